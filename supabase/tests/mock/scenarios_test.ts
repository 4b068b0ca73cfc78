import { assertEquals, assertThrows } from "./assert.ts";
import { faultFor, parseScenario, SCENARIO_KINDS, ScenarioBook } from "./scenarios.ts";
import type { Fault } from "./scenarios.ts";

const A = "aaaaaaaa-0000-4000-8000-000000000001";
const B = "bbbbbbbb-0000-4000-8000-000000000002";
const OK: Fault = { type: "none" };

Deno.test("parseScenario accepts every kind by name and rejects junk", () => {
  for (const kind of SCENARIO_KINDS) assertEquals(parseScenario(kind).kind, kind);
  assertEquals(parseScenario({ kind: "429", retryAfterSeconds: 3, times: 1 }), {
    kind: "429",
    retryAfterSeconds: 3,
    times: 1,
  });
  assertThrows(() => parseScenario("always-502"), Error, "unknown scenario kind");
  assertThrows(() => parseScenario({ kind: "403", retryAfterSeconds: 1 }), Error, "no parameter");
  assertThrows(() => parseScenario({ kind: "429", times: -1 }), Error, "non-negative");
  assertThrows(() => parseScenario({ kind: "slow", target: "db" }), Error, "target");
  assertThrows(() => parseScenario(42), Error, "kind");
});

Deno.test("faultFor: times limits a fault, then success", () => {
  const s = parseScenario({ kind: "429", retryAfterSeconds: 7, times: 2 });
  assertEquals(faultFor(s, 1), { type: "status", status: 429, retryAfterSeconds: 7 });
  assertEquals(faultFor(s, 2), { type: "status", status: 429, retryAfterSeconds: 7 });
  assertEquals(faultFor(s, 3), OK);
  assertEquals(faultFor(parseScenario("403"), 1000), { type: "status", status: 403 });
  assertEquals(faultFor(parseScenario("slow"), 1), { type: "delay", ms: 15_000 });
});

Deno.test("global fail-twice-then-succeed counts per contact", () => {
  const book = new ScenarioBook();
  book.setGlobal("fail-twice-then-succeed");
  const status = (id: string) => {
    const f = book.next("api", id, "PATCH x");
    return f.type === "status" ? f.status : f.type;
  };
  assertEquals([status(A), status(B), status(A), status(A), status(B), status(B)], [
    503,
    503,
    503,
    "none",
    503,
    "none",
  ]);
});

Deno.test("per-contact scenario wins; clearing falls back to global", () => {
  const book = new ScenarioBook();
  book.setGlobal("always-503");
  book.setForContact(A, "403");
  assertEquals(book.next("api", A, "r"), { type: "status", status: 403 });
  assertEquals(book.next("api", B, "r").type, "status");
  assertEquals(book.next("api", B, "r"), {
    type: "status",
    status: 503,
    retryAfterSeconds: undefined,
  });
  book.setForContact(A, null);
  assertEquals(book.next("api", A, "r"), {
    type: "status",
    status: 503,
    retryAfterSeconds: undefined,
  });
  assertThrows(() => book.setForContact(A, "invalid_client"), Error, "token endpoint");
});

Deno.test("token scenarios never hit the API and API scenarios never hit the token endpoint", () => {
  const book = new ScenarioBook();
  book.setGlobal("invalid_client");
  assertEquals(book.next("api", A, "r"), OK);
  assertEquals(book.next("token", undefined, "token"), { type: "invalid_client" });
  book.setGlobal("always-503");
  assertEquals(book.next("token", undefined, "token"), OK);
  book.setGlobal({ kind: "reset", target: "token", times: 1 });
  assertEquals(book.next("api", A, "r"), OK);
  assertEquals(book.next("token", undefined, "token"), { type: "reset" });
  assertEquals(book.next("token", undefined, "token"), OK);
});
