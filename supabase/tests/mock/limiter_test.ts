import { assertEquals, assertThrows } from "./assert.ts";
import {
  CONCURRENCY_LIMIT_CODE,
  parseLimiterSpec,
  REQUEST_LIMIT_CODE,
  ServiceProtectionLimiter,
} from "./limiter.ts";

Deno.test("sliding window: N per window, Retry-After until the oldest leaves", () => {
  let now = 1_000_000;
  const limiter = new ServiceProtectionLimiter({ requests: 2, windowMs: 10_000 }, () => now);
  assertEquals(limiter.admit(0), { ok: true });
  now += 4_000;
  assertEquals(limiter.admit(0), { ok: true });
  now += 1_000;
  assertEquals(limiter.admit(0), {
    ok: false,
    code: REQUEST_LIMIT_CODE,
    message: "Number of requests exceeded the limit of 2 over time window of 10 seconds.",
    retryAfterSeconds: 5,
  });
  now += 5_000; // the first request has left the window
  assertEquals(limiter.admit(0), { ok: true });
  assertEquals(limiter.admit(0).ok, false);
});

Deno.test("Dataverse's own numbers give Dataverse's message", () => {
  const limiter = new ServiceProtectionLimiter({ requests: 1, windowMs: 300_000 }, () => 0);
  limiter.admit(0);
  const v = limiter.admit(0);
  assertEquals(
    v.ok ? "" : v.message,
    "Number of requests exceeded the limit of 1 over time window of 300 seconds.",
  );
});

Deno.test("concurrency bound answers 0x80072326 and does not use up the window", () => {
  const limiter = new ServiceProtectionLimiter(
    { requests: 1, windowMs: 1000, concurrent: 2 },
    () => 0,
  );
  assertEquals(limiter.admit(2), {
    ok: false,
    code: CONCURRENCY_LIMIT_CODE,
    message: "Number of concurrent requests exceeded the limit of 2.",
    retryAfterSeconds: 1,
  });
  assertEquals(limiter.admit(1), { ok: true });
});

Deno.test("CLI limiter spec", () => {
  assertEquals(parseLimiterSpec("6000/300s/52"), {
    requests: 6000,
    windowMs: 300_000,
    concurrent: 52,
  });
  assertEquals(parseLimiterSpec("5/1000"), { requests: 5, windowMs: 1000 });
  assertThrows(() => parseLimiterSpec("5"), Error, "bad limiter");
  assertThrows(() => parseLimiterSpec("0/1000"), Error, "positive");
});
