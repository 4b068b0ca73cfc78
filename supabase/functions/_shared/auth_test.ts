import { SignJWT } from "jose";
import { assertEquals, assertRejects } from "../../../tests/assert.ts";
import { makeAuthenticator } from "./auth.ts";
import type { HttpError } from "./http.ts";

const SECRET = "unit-test-jwt-secret-0123456789abcdef";
const USER = "6b0f6c1e-2222-4333-8444-955556666777";
const authenticate = makeAuthenticator({ serviceRoleKey: "svc-key-0123456789", jwtSecret: SECRET });
const req = (auth?: string) =>
  new Request("http://x/", { method: "POST", headers: auth ? { authorization: auth } : {} });

async function jwt(claims: Record<string, unknown>, secret = SECRET, expSeconds = 60) {
  return await new SignJWT(claims).setProtectedHeader({ alg: "HS256" })
    .setExpirationTime(Math.floor(Date.now() / 1000) + expSeconds)
    .sign(new TextEncoder().encode(secret));
}

Deno.test("the service key and a service_role JWT identify the service", async () => {
  assertEquals(await authenticate(req("Bearer svc-key-0123456789")), { kind: "service" });
  assertEquals(await authenticate(req(`Bearer ${await jwt({ role: "service_role" })}`)), {
    kind: "service",
  });
});

Deno.test("a coordinator JWT yields the user id", async () => {
  const caller = await authenticate(
    req(`Bearer ${await jwt({ role: "authenticated", sub: USER })}`),
  );
  assertEquals(caller.kind === "coordinator" ? caller.userId : null, USER);
});

Deno.test("missing, forged, expired and anonymous tokens are 401", async () => {
  const cases = [
    undefined,
    "Basic abc",
    "Bearer svc-key-012345678",
    `Bearer ${await jwt({ role: "authenticated", sub: USER }, "another-secret-0123456789abcdef")}`,
    `Bearer ${await jwt({ role: "authenticated", sub: USER }, SECRET, -120)}`,
    `Bearer ${await jwt({ role: "anon" })}`,
    `Bearer ${await jwt({ role: "authenticated", sub: "not-a-uuid" })}`,
  ];
  for (const c of cases) {
    const err = await assertRejects(() => authenticate(req(c)));
    assertEquals((err as HttpError).code, "UNAUTHORIZED", String(c));
  }
});
