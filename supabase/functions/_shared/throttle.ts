// The isolate's Dataverse throttle. Dataverse's Retry-After (on 429 service-protection answers and
// 503s) is addressed to the caller, not to one request: once any request of this isolate is told
// to wait, no new job may start before that time. The Dynamics client's fetch reports every
// Dataverse answer here (context.ts); the processor starts no job, and claims no batch, before
// `throttledUntil()`. Requests already in flight finish, and their own in-request retries honour
// their own Retry-After (inside the core).

/** Longest pause one answer can impose (the processor also never sleeps past its deadline). */
export const MAX_PAUSE_MS = 300_000;

let until = 0;

/** Epoch ms before which no new Dataverse job should start (0 or in the past = none). */
export function throttledUntil(): number {
  return until;
}

/** Forgets the pause (tests). */
export function resetThrottle(): void {
  until = 0;
}

/** `Retry-After` as milliseconds from `nowMs`: delta-seconds or an HTTP date; null otherwise. */
export function parseRetryAfterMs(value: string | null, nowMs: number): number | null {
  const v = value?.trim();
  if (!v) return null;
  if (/^\d+$/.test(v)) return Math.min(Number(v) * 1000, MAX_PAUSE_MS);
  const at = Date.parse(v);
  if (Number.isNaN(at) || !/[a-z]/i.test(v)) return null;
  return Math.min(Math.max(0, at - nowMs), MAX_PAUSE_MS);
}

/** Records the pause an answer asks for (429 or 503 with a Retry-After). */
export function noteAnswer(status: number, retryAfter: string | null, nowMs = Date.now()): void {
  if (status !== 429 && status !== 503) return;
  const ms = parseRetryAfterMs(retryAfter, nowMs);
  if (ms !== null && ms > 0) until = Math.max(until, nowMs + ms);
}

/**
 * A fetch for the Dynamics client that reports Dataverse answers (URLs under `baseUrl`; the
 * Azure AD token endpoint is another service and does not pause Dataverse work).
 */
export function dataverseFetch(
  baseUrl: string,
  inner: (url: string, init: RequestInit) => Promise<Response> = (u, i) => fetch(u, i),
): (url: string, init: RequestInit) => Promise<Response> {
  const prefix = baseUrl.replace(/\/+$/, "") + "/";
  return async (url, init) => {
    const res = await inner(url, init);
    if (url.startsWith(prefix)) noteAnswer(res.status, res.headers.get("retry-after"));
    return res;
  };
}
