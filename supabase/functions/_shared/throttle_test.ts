import {
  dataverseFetch,
  MAX_PAUSE_MS,
  noteAnswer,
  PACING_TTL_MS,
  parseRetryAfterMs,
  PROBE_TIMEOUT_MS,
  resetThrottle,
  throttledUntil,
  ThrottleGate,
  waitTurn,
} from "./throttle.ts";

function assertEquals(actual: unknown, expected: unknown, msg = "") {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${msg} expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

Deno.test("Retry-After: seconds, HTTP dates, garbage, cap", () => {
  const now = Date.parse("2026-11-23T10:00:00Z");
  assertEquals(parseRetryAfterMs("2", now), 2000);
  assertEquals(parseRetryAfterMs(" 0 ", now), 0);
  assertEquals(parseRetryAfterMs("Mon, 23 Nov 2026 10:00:05 GMT", now), 5000);
  assertEquals(parseRetryAfterMs("Mon, 23 Nov 2026 09:00:00 GMT", now), 0);
  assertEquals(parseRetryAfterMs("99999", now), MAX_PAUSE_MS);
  for (const bad of [null, "", "-1", "1.5", "soon", "12abc"]) {
    assertEquals(parseRetryAfterMs(bad, now), null, String(bad));
  }
});

Deno.test("only 429/503 with a Retry-After pause; the pause only grows", () => {
  resetThrottle();
  noteAnswer(500, "5", 1_000);
  noteAnswer(429, null, 1_000);
  assertEquals(throttledUntil(), 0);
  noteAnswer(429, "2", 1_000);
  assertEquals(throttledUntil(), 3_000);
  noteAnswer(503, "1", 1_500);
  assertEquals(throttledUntil(), 3_000, "a shorter wait does not shorten the pause");
  noteAnswer(503, "3", 1_500);
  assertEquals(throttledUntil(), 4_500);
  resetThrottle();
});

Deno.test("dataverseFetch reports Dataverse answers only, not the token endpoint's", async () => {
  resetThrottle();
  const answer = () =>
    Promise.resolve(new Response(null, { status: 429, headers: { "retry-after": "7" } }));
  const f = dataverseFetch("https://org.example/", answer);
  await f("https://login.example/t/oauth2/v2.0/token", {});
  assertEquals(throttledUntil(), 0);
  const before = Date.now();
  await f("https://org.example/api/data/v9.2/contacts(1)", {});
  const until = throttledUntil();
  if (until < before + 7_000 || until > Date.now() + 7_000) throw new Error(`pause ${until}`);
  resetThrottle();
});

Deno.test("gate: after a pause one probe goes first; the others wait for its answer", () => {
  const g = new ThrottleGate();
  assertEquals(g.tryStart(0), 0, "open at first");
  g.throttled(100, 2_000, true);
  assertEquals(g.tryStart(1_000), 1_100, "paused until the Retry-After ends");
  assertEquals(g.tryStart(2_100), 0, "the probe");
  if (g.tryStart(2_101) <= 0) throw new Error("a second request started before the probe's answer");
  g.admitted(2_150);
  assertEquals(g.tryStart(2_151), 0, "the window is open again after the probe was admitted");
});

Deno.test("gate: a probe that was never sent is handed to the next request", () => {
  const g = new ThrottleGate();
  g.throttled(0, 1_000, false);
  assertEquals(g.tryStart(1_000), 0);
  if (g.tryStart(1_001) <= 0) throw new Error("second probe");
  g.release(1_000);
  assertEquals(g.tryStart(1_002), 0, "released: another request probes");
  if (g.tryStart(1_003) <= 0) throw new Error("third probe");
  assertEquals(g.tryStart(1_002 + PROBE_TIMEOUT_MS), 0, "an unanswered probe times out");
});

Deno.test("gate: a 429 paces the rest at what the limiter admitted per window", () => {
  const g = new ThrottleGate();
  // 60 admitted from t=0, then a 429 at t=100 asking for 2.9 s: 59 per 3 s.
  for (let i = 0; i < 60; i++) {
    assertEquals(g.tryStart(i), 0);
    g.admitted(i + 1);
  }
  g.throttled(100, 2_900, true);
  assertEquals(g.tryStart(3_000), 0, "probe");
  g.admitted(3_001);
  let started = 1;
  for (let t = 3_001; t < 6_000; t++) if (g.tryStart(t) === 0) started++;
  if (started > 60 || started < 55) throw new Error(`paced ${started} in one 3 s window`);
  // Pacing lapses PACING_TTL_MS after the 429.
  const far = 3_000 + PACING_TTL_MS + 1;
  assertEquals(g.tryStart(far), 0);
  assertEquals(g.tryStart(far), 0, "no pacing any more");
});

Deno.test("waitTurn sleeps until the gate lets it through, never past its deadline", async () => {
  const g = new ThrottleGate();
  let t = 0;
  const sleep = (ms: number) => {
    t += ms;
    return Promise.resolve();
  };
  g.throttled(0, 500, false);
  assertEquals(await waitTurn(10_000, () => t, sleep, g), 500);
  g.throttled(t, 60_000, false);
  assertEquals(await waitTurn(1_000, () => t, sleep, g), 1_000, "gives up at the deadline");
});
