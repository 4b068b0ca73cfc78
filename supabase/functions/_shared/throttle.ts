// The isolate's Dataverse throttle. Dataverse's Retry-After (on 429 service-protection answers and
// 503s) is addressed to the caller, not to one request: once any request of this isolate is told
// to wait, no new request may start before that time. The Dynamics client's fetch reports every
// Dataverse answer here (context.ts). The processor starts no job, and claims no batch, before
// `throttledUntil()`; jobs and the core's in-request retries (through the sleeper context.ts gives
// the client) pass `gate` before sending:
// - after a pause, ONE request probes the window; the others start only once it was admitted
//   (another 429 pauses again), so a new window is not burst into by every waiting worker;
// - after a 429, requests are paced: a token bucket sized from what the limiter admitted between
//   the last resume and that 429 (admitted − 1 per admitted-span + Retry-After), so the next
//   window's budget is spread instead of discovered with a 429. Pacing lapses 5 min (Dataverse's
//   window) after the last 429, and a later 429 learns again.

/** Longest pause one answer can impose (the processor also never sleeps past its deadline). */
export const MAX_PAUSE_MS = 300_000;

let until = 0;

/** Epoch ms before which no new Dataverse job should start (0 or in the past = none). */
export function throttledUntil(): number {
  return until;
}

/** Forgets the pause, the probe and the pacing (tests). */
export function resetThrottle(): void {
  until = 0;
  gate.reset();
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

/** Records the pause an answer asks for (429 or 503 with a Retry-After); feeds the gate. */
export function noteAnswer(status: number, retryAfter: string | null, nowMs = Date.now()): void {
  if (status !== 429 && status !== 503) {
    gate.admitted(nowMs);
    return;
  }
  const ms = parseRetryAfterMs(retryAfter, nowMs);
  if (ms !== null && ms > 0) {
    until = Math.max(until, nowMs + ms);
    gate.throttled(nowMs, ms, status === 429);
  } else {
    gate.admitted(nowMs); // nothing to wait for: not a verdict on the window
  }
}

/** How long a probe may stay unanswered before another request may probe instead. */
export const PROBE_TIMEOUT_MS = 15_000;
/** Admitted requests before a 429 needed to size a pace from them. */
export const MIN_ADMITTED_TO_PACE = 20;
/** How long learned pacing lasts after the last 429 (Dataverse's sliding window). */
export const PACING_TTL_MS = 300_000;

/**
 * Decides when the next Dataverse request may start: after the pause, one probe at a time while
 * the window is unknown, then at the learned rate. Clock-free: every method takes `nowMs`.
 */
export class ThrottleGate {
  /** Epoch ms until which no request starts (mirrors the isolate's `until`). */
  #pauseUntil = 0;
  /** After a pause: a probe must be admitted before the others go. */
  #needProbe = false;
  /** When the current probe was handed out (0 = none out). */
  #probeSince = 0;
  /** Learned pacing: requests per ms (0 = none), until `#pacedUntil`. */
  #rate = 0;
  #pacedUntil = 0;
  /** Next free token time of the bucket (capacity one: evenly spaced starts). */
  #nextToken = 0;
  /** Admitted answers since `#spanStart` (the first request after the last resume). */
  #admitted = 0;
  #spanStart = 0;

  reset(): void {
    this.#pauseUntil = 0;
    this.#needProbe = false;
    this.#probeSince = 0;
    this.#rate = 0;
    this.#pacedUntil = 0;
    this.#nextToken = 0;
    this.#admitted = 0;
    this.#spanStart = 0;
  }

  /** A Dataverse answer that was not a throttle: the window is open again. */
  admitted(nowMs: number): void {
    // An answer during a pause is from a request sent before it: no news about the next window.
    if (nowMs < this.#pauseUntil) return;
    if (this.#spanStart === 0 || nowMs - this.#spanStart > PACING_TTL_MS) {
      this.#spanStart = nowMs;
      this.#admitted = 0;
    }
    this.#admitted++;
    this.#needProbe = false;
    this.#probeSince = 0;
  }

  /** A 429/503 asking to wait `waitMs`; a 429 also sizes the pacing. */
  throttled(nowMs: number, waitMs: number, rateLimit: boolean): void {
    // Few admitted requests say little about the window (a concurrency 429, or a window other
    // callers had used up): pause and probe, but learn no pace from them.
    if (rateLimit && this.#admitted >= MIN_ADMITTED_TO_PACE && this.#spanStart > 0) {
      const span = nowMs - this.#spanStart + waitMs;
      const rate = (this.#admitted - 1) / Math.max(span, 1);
      // A 429 right after a resume says the budget is smaller than thought: keep the lower rate.
      this.#rate = this.#rate > 0 && nowMs < this.#pacedUntil ? Math.min(this.#rate, rate) : rate;
    }
    if (rateLimit) this.#pacedUntil = nowMs + waitMs + PACING_TTL_MS;
    this.#pauseUntil = Math.max(this.#pauseUntil, nowMs + waitMs);
    this.#needProbe = true;
    this.#probeSince = 0;
    this.#admitted = 0;
    this.#spanStart = 0;
  }

  /** Epoch ms of the end of the pause (0 or past: none). */
  pausedUntil(): number {
    return this.#pauseUntil;
  }

  /**
   * Asks to start one request now. Returns 0 when it may (a token is taken; a probe is handed
   * out), else how many ms to wait before asking again.
   */
  tryStart(nowMs: number): number {
    if (nowMs < this.#pauseUntil) return this.#pauseUntil - nowMs;
    if (this.#needProbe) {
      if (this.#probeSince !== 0 && nowMs - this.#probeSince < PROBE_TIMEOUT_MS) {
        return Math.min(50, PROBE_TIMEOUT_MS - (nowMs - this.#probeSince));
      }
      this.#probeSince = nowMs;
      this.#begin(nowMs);
      return 0;
    }
    if (this.#rate > 0 && nowMs < this.#pacedUntil) {
      if (nowMs < this.#nextToken) return Math.ceil(this.#nextToken - nowMs);
      // capacity one: evenly spaced starts, no saved-up burst after an idle spell
      this.#nextToken = nowMs + 1 / this.#rate;
    }
    this.#begin(nowMs);
    return 0;
  }

  /**
   * A request handed out by `tryStart` was not sent after all (or its job ended without an
   * answer): when it was the probe, let another request probe.
   */
  release(startedAtMs: number): void {
    if (this.#needProbe && this.#probeSince !== 0 && this.#probeSince <= startedAtMs) {
      this.#probeSince = 0;
    }
  }

  #begin(nowMs: number): void {
    if (this.#spanStart === 0) this.#spanStart = nowMs;
  }
}

/** The isolate's gate, fed by `dataverseFetch`. */
export const gate = new ThrottleGate();

/**
 * Waits until `gate` lets one request start, or until `deadlineMs` (then returns anyway: the
 * caller's own deadline handling decides). Returns when the request was let through (epoch ms).
 */
export async function waitTurn(
  deadlineMs: number,
  now: () => number = Date.now,
  sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  g: ThrottleGate = gate,
): Promise<number> {
  for (;;) {
    const t = now();
    const wait = g.tryStart(t);
    if (wait <= 0) return t;
    if (t >= deadlineMs) return t;
    await sleep(Math.max(1, Math.min(wait, deadlineMs - t)));
  }
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
