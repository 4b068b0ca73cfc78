// The optimised module in pkg/ (after wasm-opt), loaded exactly as the function loads it, driven
// through its exported API with a fake fetch. Catches a wasm-opt or glue problem that the
// unoptimised wasm-bindgen-test build cannot see.
import { assert, assertEquals, assertThrows } from "./assert.ts";
import {
  type ClientIo,
  desiredVisibility,
  DynamicsClient,
  validateConfig,
} from "../supabase/functions/_shared/core.ts";

const CONTACT = "11111111-2222-3333-4444-555555555555";
const SECRET = "wasm-api-test-secret-0001";

interface Recorded {
  url: string;
  init: RequestInit;
}

function fakeWorld(apiStatuses: number[]) {
  const calls: Recorded[] = [];
  const logs: string[] = [];
  let t = 1_800_000_000_000;
  const io: ClientIo = {
    credentials: () => ({ tenantId: "tenant", clientId: "client", clientSecret: SECRET }),
    now: () => t,
    sleep: (ms: number) => {
      t += ms;
      return Promise.resolve();
    },
    log: (e) => logs.push(JSON.stringify(e)),
    fetch: (url: string, init: RequestInit) => {
      calls.push({ url, init });
      if (url.includes("/oauth2/v2.0/token")) {
        return Promise.resolve(Response.json({
          token_type: "Bearer",
          expires_in: 3599,
          access_token: "token-abc",
        }));
      }
      const status = apiStatuses.length > 1 ? apiStatuses.shift()! : apiStatuses[0];
      return Promise.resolve(new Response(status === 204 ? null : "{}", { status }));
    },
  };
  return { io, calls, logs };
}

const config = {
  baseUrl: "https://org.example.test",
  tokenUrl: "https://login.example.test/{tenant}/oauth2/v2.0/token",
  backoffBaseMs: 10,
  backoffJitterMs: 0,
  rngSeed: 1,
};

Deno.test("optimised module patches visibility with the contract's headers", async () => {
  const w = fakeWorld([204]);
  const client = new DynamicsClient(config, w.io);
  const report = await client.setVisibility(CONTACT, true);
  assertEquals(report.ok, true);
  const patch = w.calls.find((c) => c.init.method === "PATCH");
  assert(patch, "a PATCH was sent");
  assertEquals(patch.url, `https://org.example.test/api/data/v9.2/contacts(${CONTACT})`);
  const headers = patch.init.headers as Record<string, string>;
  assertEquals(headers["If-Match"], "*");
  assertEquals(headers["OData-MaxVersion"], "4.0");
  assertEquals(headers["Authorization"], "Bearer token-abc");
  assertEquals(patch.init.body, '{"hlf_portalvisible":true}');
});

Deno.test("optimised module retries 503 and reports every attempt", async () => {
  const w = fakeWorld([503, 503, 204]);
  const client = new DynamicsClient(config, w.io);
  const report = await client.setVisibility(CONTACT, false);
  assertEquals(report.ok, true);
  assertEquals(report.attempts.map((a) => a.httpStatus), [503, 503, 204]);
  assertEquals(report.attempts.map((a) => a.errorCode), ["SERVER_ERROR", "SERVER_ERROR", null]);
});

Deno.test("syncJob turns exhausted transient failures into a queue retry", async () => {
  const w = fakeWorld([503]);
  const client = new DynamicsClient(config, w.io);
  const report = await client.syncJob(
    {
      attempts: 1,
      dynamicsContactId: CONTACT,
      status: "active",
      latestCertExpiresAtMs: 1_900_000_000_000,
      syncEnabled: true,
    },
    { maxAttempts: 8, baseMs: 60_000 },
  );
  assertEquals(report.outcome.kind, "retry");
  assertEquals(report.visible, true);
  assert(report.outcome.retryAtMs! >= 1_800_000_000_000 + 60_000, JSON.stringify(report));
});

Deno.test("nothing the module returns or logs contains the client secret or token", async () => {
  const w = fakeWorld([401]);
  const client = new DynamicsClient(config, w.io);
  const report = await client.setVisibility(CONTACT, true);
  assertEquals(report.error?.code, "AUTH_FAILED");
  const everything = JSON.stringify(report) + w.logs.join("\n");
  assert(!everything.includes(SECRET), everything);
  assert(!everything.includes("token-abc"), everything);
});

Deno.test("a non-https base URL is refused with a clear error", () => {
  assertThrows(() => validateConfig({ baseUrl: "http://org.example.test" }), "https");
  assertThrows(() => new DynamicsClient({ baseUrl: "ftp://x" }, fakeWorld([204]).io), "https");
});

Deno.test("desired visibility is exported", () => {
  const facts = { status: "active" as const, latestCertExpiresAtMs: 2_000, syncEnabled: true };
  assertEquals(desiredVisibility(facts, 1_000), true);
  assertEquals(desiredVisibility({ ...facts, syncEnabled: false }, 1_000), false);
});
