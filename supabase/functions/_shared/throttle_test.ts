import {
  dataverseFetch,
  MAX_PAUSE_MS,
  noteAnswer,
  parseRetryAfterMs,
  resetThrottle,
  throttledUntil,
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
