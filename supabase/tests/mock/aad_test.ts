import { assertEquals, assertMatch } from "./assert.ts";
import { aadErrorBody, aadTimestamp, checkTokenRequest } from "./aad.ts";
import type { AadConfig } from "./aad.ts";

const CFG: AadConfig = {
  tenantId: "t",
  clientId: "app",
  clientSecret: "s3cret",
  resourceOrigins: ["https://127.0.0.1:1"],
};
const FORM = "application/x-www-form-urlencoded";

function check(fields: Record<string, string>, contentType = FORM) {
  return checkTokenRequest(contentType, new URLSearchParams(fields).toString(), CFG);
}

const GOOD = {
  grant_type: "client_credentials",
  client_id: "app",
  client_secret: "s3cret",
  scope: "https://127.0.0.1:1/.default",
};

function codeOf(fields: Record<string, string>, contentType?: string): string {
  const r = check(fields, contentType);
  return r.ok ? "ok" : `${r.status} ${r.error} ${r.code}`;
}

Deno.test("token request validation follows AAD's order and codes", () => {
  assertEquals(codeOf(GOOD), "ok");
  assertEquals(codeOf(GOOD, "application/json"), "400 invalid_request 900144");
  assertEquals(codeOf({ ...GOOD, grant_type: "password" }), "400 unsupported_grant_type 70003");
  const { client_id: _c, ...noClient } = GOOD;
  assertEquals(codeOf(noClient), "400 invalid_request 900144");
  assertEquals(codeOf({ ...GOOD, client_id: "other" }), "400 unauthorized_client 700016");
  const { scope: _s, ...noScope } = GOOD;
  assertEquals(codeOf(noScope), "400 invalid_request 900144");
  assertEquals(codeOf({ ...GOOD, scope: "https://127.0.0.1:1" }), "400 invalid_scope 1002012");
  assertEquals(
    codeOf({ ...GOOD, scope: "https://org.crm4.dynamics.com/.default" }),
    "400 invalid_resource 500011",
  );
  const { client_secret: _x, ...noSecret } = GOOD;
  assertEquals(codeOf(noSecret), "401 invalid_client 7000218");
  assertEquals(codeOf({ ...GOOD, client_secret: "s3creT" }), "401 invalid_client 7000215");
  assertEquals(codeOf({ ...GOOD, scope: "https://127.0.0.1:1//.default" }), "ok");
});

Deno.test("AAD error body shape", () => {
  const b = aadErrorBody("invalid_client", 7000215, "Invalid client secret provided.", new Date(0));
  assertEquals(b.error, "invalid_client");
  assertEquals(b.error_codes, [7000215]);
  assertEquals(b.timestamp, "1970-01-01 00:00:00Z");
  assertMatch(
    b.error_description,
    /^AADSTS7000215: Invalid client secret provided\.\r\nTrace ID: /,
  );
  assertMatch(b.trace_id, /^[0-9a-f-]{36}$/);
  assertEquals(b.error_uri, "https://login.microsoftonline.com/error?code=7000215");
  assertEquals(aadTimestamp(new Date("2024-05-01T12:34:56.789Z")), "2024-05-01 12:34:56Z");
});
