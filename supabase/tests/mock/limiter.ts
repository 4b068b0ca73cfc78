/**
 * Dataverse service-protection limiter: a sliding window of admitted requests plus an optional
 * bound on concurrent requests, answering like Dataverse (429, error codes 0x80072322 and
 * 0x80072326, Retry-After in seconds). The clock is injectable, so it is testable without sleeping.
 */

export interface LimiterConfig {
  /** Requests admitted per window (Dataverse: 6000). */
  requests: number;
  /** Sliding window length in ms (Dataverse: 300000). */
  windowMs: number;
  /** Concurrent requests allowed (Dataverse: 52); unlimited when absent. */
  concurrent?: number;
  /** Retry-After sent when the concurrency bound is hit (default 1 s). */
  concurrentRetryAfterSeconds?: number;
}

export type LimitVerdict =
  | { ok: true }
  | { ok: false; code: string; message: string; retryAfterSeconds: number };

export const REQUEST_LIMIT_CODE = "0x80072322";
export const CONCURRENCY_LIMIT_CODE = "0x80072326";

function positiveInteger(v: unknown, name: string): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new Error(`limiter.${name} must be a positive integer`);
  }
  return v;
}

/** Validates untrusted input into a LimiterConfig; throws naming the problem. */
export function parseLimiterConfig(value: unknown): LimiterConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error("limiter must be an object {requests, windowMs, concurrent?}");
  }
  const v = value as Record<string, unknown>;
  const config: LimiterConfig = {
    requests: positiveInteger(v.requests, "requests"),
    windowMs: positiveInteger(v.windowMs, "windowMs"),
  };
  if (v.concurrent !== undefined) config.concurrent = positiveInteger(v.concurrent, "concurrent");
  if (v.concurrentRetryAfterSeconds !== undefined) {
    config.concurrentRetryAfterSeconds = positiveInteger(
      v.concurrentRetryAfterSeconds,
      "concurrentRetryAfterSeconds",
    );
  }
  return config;
}

/** Parses the CLI form `REQUESTS/WINDOW[/CONCURRENT]`, WINDOW in ms or with an `s` suffix. */
export function parseLimiterSpec(spec: string): LimiterConfig {
  const m = /^(\d+)\/(\d+)(ms|s)?(?:\/(\d+))?$/.exec(spec.trim());
  if (!m) {
    throw new Error(`bad limiter ${JSON.stringify(spec)}: want R/W[ms|s][/C], e.g. 6000/300s/52`);
  }
  const windowMs = Number(m[2]) * (m[3] === "s" ? 1000 : 1);
  return parseLimiterConfig({
    requests: Number(m[1]),
    windowMs,
    ...(m[4] === undefined ? {} : { concurrent: Number(m[4]) }),
  });
}

function formatSeconds(ms: number): string {
  return String(Number((ms / 1000).toFixed(3)));
}

export class ServiceProtectionLimiter {
  readonly config: LimiterConfig;
  readonly #now: () => number;
  #admitted: number[] = [];

  constructor(config: LimiterConfig, now: () => number = Date.now) {
    this.config = parseLimiterConfig(config);
    this.#now = now;
  }

  /**
   * Decides one request. `othersInFlight` counts requests already being processed. Admitted
   * requests enter the window; rejected ones do not.
   */
  admit(othersInFlight: number): LimitVerdict {
    const { requests, windowMs, concurrent } = this.config;
    if (concurrent !== undefined && othersInFlight >= concurrent) {
      return {
        ok: false,
        code: CONCURRENCY_LIMIT_CODE,
        message: `Number of concurrent requests exceeded the limit of ${concurrent}.`,
        retryAfterSeconds: this.config.concurrentRetryAfterSeconds ?? 1,
      };
    }
    const now = this.#now();
    this.#admitted = this.#admitted.filter((t) => t > now - windowMs);
    if (this.#admitted.length >= requests) {
      const waitMs = this.#admitted[0] + windowMs - now;
      return {
        ok: false,
        code: REQUEST_LIMIT_CODE,
        message: `Number of requests exceeded the limit of ${requests} over time window of ${
          formatSeconds(windowMs)
        } seconds.`,
        retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)),
      };
    }
    this.#admitted.push(now);
    return { ok: true };
  }
}
