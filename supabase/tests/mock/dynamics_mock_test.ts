/**
 * The mock through real HTTPS, trusted only via its throwaway CA:
 * in-process with Deno.createHttpClient({ caCerts }) (works in Deno 2.1.4 without flags), and
 * in a spawned Deno process with DENO_CERT (the way the function under test trusts it).
 */

import {
  assert,
  assertEquals,
  assertMatch,
  assertNotEquals,
  assertRejects,
  assertStringIncludes,
} from "./assert.ts";
import { startDynamicsMock } from "./dynamics_mock.ts";
import {
  body,
  CONTACT_A,
  CONTACT_B,
  errorCode,
  MISSING,
  PATCH_HEADERS,
  testCa,
  withMock,
} from "./test_support.ts";
import type { DataverseErrorBody, ListBody } from "./test_support.ts";

const TWO = { contacts: [CONTACT_A, CONTACT_B] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- TLS ------------------------------------------------------------------------------------

Deno.test("TLS: the CA is required; 127.0.0.1 and localhost both verify", async () => {
  await withMock({}, async (h) => {
    await assertRejects(() => fetch(`${h.mock.baseUrl}/api/data/v9.2/WhoAmI`), TypeError);
    const viaLocalhost = await h.fetch(`https://localhost:${h.mock.port}/api/data/v9.2/WhoAmI`);
    assertEquals(viaLocalhost.status, 401); // reached the server: TLS verified for localhost
    assertEquals((await h.api("GET", "WhoAmI")).status, 200);
  });
});

async function fetchInChild(url: string, env: Record<string, string>): Promise<string> {
  const script = `try { const r = await fetch(${JSON.stringify(url)}); await r.body?.cancel();` +
    ` console.log("status " + r.status); } catch (e) { console.log("error " + e.message); }`;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env: { ...env, NO_COLOR: "1" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("TLS: a spawned Deno trusts the mock through DENO_CERT and only then", async () => {
  await withMock({}, async (h) => {
    const url = `${h.mock.baseUrl}/api/data/v9.2/WhoAmI`;
    assertEquals(await fetchInChild(url, { DENO_CERT: h.ca.caCertFile }), "status 401");
    assertMatch(await fetchInChild(url, {}), /^error .*(UnknownIssuer|certificate)/);
  });
});

// ---- token endpoint --------------------------------------------------------------------------

Deno.test("token: client credentials grant issues an opaque bearer", async () => {
  await withMock({ tokenLifetimeSeconds: 1234 }, async (h) => {
    const a = await h.tokenCall();
    assertEquals(a.status, 200);
    const t = body<Record<string, unknown>>(a);
    assertEquals(Object.keys(t).sort(), [
      "access_token",
      "expires_in",
      "ext_expires_in",
      "token_type",
    ]);
    assertEquals([t.token_type, t.expires_in, t.ext_expires_in], ["Bearer", 1234, 1234]);
    assertMatch(String(t.access_token), /^mock\.[A-Za-z0-9_-]{40,}$/);
    const b = await h.tokenCall();
    assertNotEquals(body<{ access_token: string }>(b).access_token, t.access_token);
    assertEquals(h.mock.counters().tokensIssued, 2);
  });
});

Deno.test("token: AAD errors for bad secret, unknown client, missing fields, tenant, method", async () => {
  await withMock({ clientSecret: "right" }, async (h) => {
    const wrong = await h.tokenCall({ client_secret: "wrong" });
    assertEquals(wrong.status, 401);
    const e = body<{ error: string; error_codes: number[]; error_description: string }>(wrong);
    assertEquals([e.error, e.error_codes], ["invalid_client", [7000215]]);
    assertMatch(e.error_description, /^AADSTS7000215: Invalid client secret provided\./);
    for (const key of ["timestamp", "trace_id", "correlation_id"]) assert(key in e, key);
    assert(!wrong.text.includes("right"), "the configured secret leaks into the error");

    const unknown = await h.tokenCall({ client_id: "99999999-9999-4999-8999-999999999999" });
    assertEquals([unknown.status, body<{ error: string }>(unknown).error], [
      400,
      "unauthorized_client",
    ]);
    const noGrant = await h.tokenCall({ grant_type: undefined });
    assertEquals([noGrant.status, body<{ error: string }>(noGrant).error], [
      400,
      "invalid_request",
    ]);
    const noScope = await h.tokenCall({ scope: undefined });
    assertEquals([noScope.status, body<{ error: string }>(noScope).error], [
      400,
      "invalid_request",
    ]);
    const noSecret = await h.tokenCall({ client_secret: undefined });
    assertEquals([noSecret.status, body<{ error: string }>(noSecret).error], [
      401,
      "invalid_client",
    ]);
    const badScope = await h.tokenCall({ scope: "https://other.example/.default" });
    assertEquals(body<{ error: string }>(badScope).error, "invalid_resource");
    const localhostScope = await h.tokenCall({
      scope: `https://localhost:${h.mock.port}/.default`,
    });
    assertEquals(localhostScope.status, 200);
    const otherTenant = await h.fetch(
      h.mock.tokenUrl.replace(h.mock.tenantId, "contoso.onmicrosoft.com"),
      { method: "POST", body: new URLSearchParams({ grant_type: "client_credentials" }) },
    );
    assertEquals([otherTenant.status, body<{ error_codes: number[] }>(otherTenant).error_codes], [
      400,
      [90002],
    ]);
    const get = await h.fetch(h.mock.tokenUrl);
    assertEquals([get.status, body<{ error_codes: number[] }>(get).error_codes], [400, [900561]]);
    assertEquals(h.mock.counters().tokensIssued, 1);
  });
});

Deno.test("token: secret rotation refuses the old secret, keeps issued tokens valid", async () => {
  await withMock({ clientSecret: "old" }, async (h) => {
    const before = await h.token();
    h.mock.setClientSecret("new");
    assertEquals((await h.tokenCall({ client_secret: "old" })).status, 401);
    assertEquals((await h.tokenCall({ client_secret: "new" })).status, 200);
    assertEquals((await h.api("GET", "WhoAmI", { token: before })).status, 200);
  });
});

// ---- API auth --------------------------------------------------------------------------------

Deno.test("api: missing, unknown and expired bearers get 401 invalid_token", async () => {
  await withMock({}, async (h) => {
    for (const token of [null, "mock.not-issued"]) {
      const a = await h.api("GET", "WhoAmI", { token });
      assertEquals(a.status, 401);
      assertStringIncludes(a.headers.get("WWW-Authenticate") ?? "", 'Bearer error="invalid_token"');
      assertStringIncludes(
        a.headers.get("WWW-Authenticate") ?? "",
        `resource_id="${h.mock.baseUrl}/"`,
      );
      assertEquals(typeof body<DataverseErrorBody>(a).error.message, "string");
    }
    const t = await h.token();
    assertEquals((await h.api("GET", "WhoAmI", { token: t })).status, 200);
    h.mock.expireTokens();
    const expired = await h.api("GET", "WhoAmI", { token: t });
    assertEquals(expired.status, 401);
    assertStringIncludes(body<DataverseErrorBody>(expired).error.message, "expired");
    assertEquals(h.mock.counters().unauthorized, 3);
  });
});

Deno.test("api: tokens expire after expires_in", async () => {
  await withMock({ tokenLifetimeSeconds: 1 }, async (h) => {
    const t = await h.token();
    assertEquals((await h.api("GET", "WhoAmI", { token: t })).status, 200);
    await sleep(1100);
    assertEquals((await h.api("GET", "WhoAmI", { token: t })).status, 401);
  });
});

// ---- PATCH -----------------------------------------------------------------------------------

Deno.test("PATCH sets visibility: 204, OData-EntityId, state and recording", async () => {
  await withMock(TWO, async (h) => {
    const t = await h.token();
    h.mock.clearRequests();
    const a = await h.patch(CONTACT_A.toUpperCase(), true, { token: t });
    assertEquals(a.status, 204);
    assertEquals(a.text, "");
    assertEquals(
      a.headers.get("OData-EntityId"),
      `${h.mock.baseUrl}/api/data/v9.2/contacts(${CONTACT_A})`,
    );
    assertEquals(h.mock.contact(CONTACT_A), { visible: true, version: 2 });
    assertEquals(h.mock.contact(CONTACT_B), { visible: false, version: 1 });
    const [rec] = h.mock.requests;
    assertEquals(h.mock.requests.length, 1);
    assertEquals([rec.kind, rec.method, rec.contactId, rec.status, rec.outcome], [
      "api",
      "PATCH",
      CONTACT_A,
      204,
      "answered",
    ]);
    assertEquals(JSON.parse(rec.body), { hlf_portalvisible: true });
    assertEquals(rec.headers["authorization"], `Bearer ${t}`);
    assertEquals(rec.headers["if-match"], "*");
    assertEquals(rec.headers["odata-version"], "4.0");
    assertEquals(h.mock.counters().patchesApplied, 1);
    assertEquals((await h.patch(CONTACT_A, false)).status, 204);
    assertEquals(h.mock.contact(CONTACT_A), { visible: false, version: 3 });
  });
});

Deno.test("PATCH to a missing contact is 404 0x80040217 and never creates it", async () => {
  await withMock(TWO, async (h) => {
    const a = await h.patch(MISSING, true);
    assertEquals(a.status, 404);
    assertEquals(body<DataverseErrorBody>(a).error, {
      code: "0x80040217",
      message: `contact With Id = ${MISSING} Does Not Exist`,
    });
    assertEquals(h.mock.contact(MISSING), undefined);
    assertEquals(h.mock.contacts().length, 2);
  });
});

Deno.test("PATCH rejects bad headers and bodies with Dataverse 400s, state untouched", async () => {
  await withMock(TWO, async (h) => {
    const cases: Array<[string, Record<string, string>, string, string]> = [
      ["no If-Match", { "If-Match": "" }, '{"hlf_portalvisible":true}', "0x80060888"],
      ["OData-Version 3", { "OData-Version": "3.0" }, '{"hlf_portalvisible":true}', "0x80060888"],
      [
        "no OData-MaxVersion",
        { "OData-MaxVersion": "" },
        '{"hlf_portalvisible":true}',
        "0x80060888",
      ],
      ["text/plain", { "Content-Type": "text/plain" }, '{"hlf_portalvisible":true}', "0x80060888"],
      ["not JSON", {}, "{hlf_portalvisible:true", "0x80048d19"],
      ["array", {}, "[true]", "0x80048d19"],
      ["string value", {}, '{"hlf_portalvisible":"true"}', "0x80048d19"],
      ["field missing", {}, "{}", "0x80048d19"],
      ["other property", {}, '{"hlf_portalvisible":true,"statecode":1}', "0x80060888"],
    ];
    for (const [name, headers, patchBody, code] of cases) {
      const merged: Record<string, string> = { ...PATCH_HEADERS, ...headers };
      for (const [k, v] of Object.entries(merged)) if (v === "") delete merged[k];
      const a = await h.api("PATCH", `contacts(${CONTACT_A})`, {
        headers: merged,
        body: patchBody,
      });
      assertEquals([a.status, errorCode(a)], [400, code], name);
    }
    const badKey = await h.patch("not-a-guid", true);
    assertEquals([badKey.status, errorCode(badKey)], [400, "0x80060888"]);
    assertEquals(h.mock.contact(CONTACT_A), { visible: false, version: 1 });
    assertEquals(h.mock.counters().patchesApplied, 0);
  });
});

Deno.test("PATCH honours an etag If-Match (412 on mismatch) and return=representation", async () => {
  await withMock(TWO, async (h) => {
    const stale = await h.patch(CONTACT_A, true, { headers: { "If-Match": 'W/"7"' } });
    assertEquals([stale.status, errorCode(stale)], [412, "0x80060882"]);
    const rep = await h.patch(CONTACT_A, true, {
      headers: { "If-Match": 'W/"1"', Prefer: "return=representation" },
    });
    assertEquals(rep.status, 200);
    const entity = body<Record<string, unknown>>(rep);
    assertEquals([entity.contactid, entity.hlf_portalvisible, entity["@odata.etag"]], [
      CONTACT_A,
      true,
      'W/"2"',
    ]);
  });
});

Deno.test("a custom visibility field is the only accepted property", async () => {
  await withMock({ ...TWO, visibilityField: "new_listed" }, async (h) => {
    assertEquals((await h.patch(CONTACT_A, true)).status, 204);
    const old = await h.api("PATCH", `contacts(${CONTACT_A})`, {
      headers: PATCH_HEADERS,
      body: '{"hlf_portalvisible":true}',
    });
    assertEquals(old.status, 400);
  });
});

// ---- GET -------------------------------------------------------------------------------------

function listPath(filter: string, select = "contactid,hlf_portalvisible"): string {
  return `contacts?$select=${select}&$filter=${encodeURIComponent(filter)}`;
}

const IN_FILTER = (ids: string[]) =>
  `Microsoft.Dynamics.CRM.In(PropertyName='contactid',PropertyValues=[${
    ids.map((i) => `'${i}'`).join(",")
  }])`;

Deno.test("GET contacts with In() filter returns the named contacts only", async () => {
  await withMock(
    { contacts: [CONTACT_A, { id: CONTACT_B, visible: true }, MISSING] },
    async (h) => {
      h.mock.setScenario("always-success");
      const a = await h.api("GET", listPath(IN_FILTER([CONTACT_A, CONTACT_B])));
      assertEquals(a.status, 200);
      const b = body<ListBody>(a);
      assertEquals(
        b["@odata.context"],
        `${h.mock.baseUrl}/api/data/v9.2/$metadata#contacts(contactid,hlf_portalvisible)`,
      );
      assertEquals(b.value, [
        { "@odata.etag": 'W/"1"', contactid: CONTACT_A, hlf_portalvisible: false },
        { "@odata.etag": 'W/"1"', contactid: CONTACT_B, hlf_portalvisible: true },
      ]);
      assertEquals(b["@odata.nextLink"], undefined);
      assertEquals(a.headers.get("Preference-Applied"), null);
    },
  );
});

Deno.test("GET contacts with an eq/or filter (plain and +-free encoding) matches In()", async () => {
  await withMock({ contacts: [CONTACT_A, CONTACT_B, MISSING] }, async (h) => {
    const filter = `contactid eq ${CONTACT_A} or contactid eq ${MISSING.toUpperCase()}`;
    const ids = (a: { json: unknown }) => (a.json as ListBody).value.map((r) => r.contactid);
    assertEquals(ids(await h.api("GET", listPath(filter))), [CONTACT_A, MISSING]);
    const raw = await h.api(
      "GET",
      `contacts?$select=contactid,hlf_portalvisible&$filter=${filter.replaceAll(" ", "%20")}`,
    );
    assertEquals(ids(raw), [CONTACT_A, MISSING]);
  });
});

Deno.test("GET contacts pages by Prefer: odata.maxpagesize and follows @odata.nextLink", async () => {
  const ids = Array.from({ length: 5 }, (_, i) => `0000000${i}-0000-4000-8000-00000000000${i}`);
  await withMock({ contacts: [...ids, CONTACT_A] }, async (h) => {
    const seen: string[] = [];
    let url: string | undefined = `${h.mock.baseUrl}/api/data/v9.2/${listPath(IN_FILTER(ids))}`;
    let pages = 0;
    while (url) {
      const a = await h.api("GET", url, { headers: { Prefer: "odata.maxpagesize=2" } });
      assertEquals(a.status, 200);
      assertEquals(a.headers.get("Preference-Applied"), "odata.maxpagesize=2");
      const b = body<ListBody>(a);
      assert(b.value.length <= 2, "page larger than maxpagesize");
      seen.push(...b.value.map((r) => String(r.contactid)));
      url = b["@odata.nextLink"];
      if (url) {
        assert(url.startsWith(`${h.mock.baseUrl}/api/data/v9.2/contacts?`), url);
        assertStringIncludes(url, "$skiptoken=");
      }
      pages++;
    }
    assertEquals(pages, 3);
    assertEquals(seen, ids);
  });
});

Deno.test("GET contacts: bad $filter, $select and options are Dataverse 400s", async () => {
  await withMock(TWO, async (h) => {
    for (
      const path of [
        listPath(`contactid eq '${CONTACT_A}'`),
        listPath(`contactid eq`),
        listPath(`fullname eq 'x'`),
        listPath(`contactid eq ${CONTACT_A}`, "contactid,fullname"),
        `contacts?$top=1`,
        `contacts?$skiptoken=junk`,
      ]
    ) {
      const a = await h.api("GET", path);
      assertEquals([a.status, errorCode(a)], [400, "0x80060888"], path);
    }
  });
});

Deno.test("GET contacts(<id>) and WhoAmI", async () => {
  await withMock(TWO, async (h) => {
    const one = await h.api("GET", `contacts(${CONTACT_B})?$select=hlf_portalvisible`);
    assertEquals(body<Record<string, unknown>>(one).contactid, CONTACT_B);
    assertEquals((await h.api("GET", `contacts(${MISSING})`)).status, 404);
    const who = await h.api("GET", "WhoAmI");
    assertEquals(who.status, 200);
    const w = body<Record<string, string>>(who);
    assertEquals(
      w["@odata.context"],
      `${h.mock.baseUrl}/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`,
    );
    assertEquals([w.BusinessUnitId, w.UserId, w.OrganizationId], [
      h.mock.whoAmI.BusinessUnitId,
      h.mock.whoAmI.UserId,
      h.mock.whoAmI.OrganizationId,
    ]);
    assertEquals(h.mock.counters().whoAmIRequests, 1);
  });
});

Deno.test("unknown routes and methods answer 404/405 with Dataverse bodies", async () => {
  await withMock({ ...TWO, controlApi: true }, async (h) => {
    const cases: Array<[string, string, number]> = [
      ["GET", "accounts", 404],
      ["DELETE", `contacts(${CONTACT_A})`, 405],
      ["POST", "contacts", 405],
      ["POST", "WhoAmI", 405],
      ["GET", "/api/data/v9.1/contacts", 404],
      ["GET", "/api/data/v9.2/__mock/requests", 404],
      ["GET", "/", 404],
    ];
    for (const [method, path, status] of cases) {
      const a = await h.api(method, path);
      assertEquals(
        [a.status, typeof body<DataverseErrorBody>(a).error.code],
        [status, "string"],
        path,
      );
    }
    assertEquals(
      (await h.api("DELETE", `contacts(${CONTACT_A})`)).headers.get("Allow"),
      "GET, PATCH",
    );
    assertEquals(h.mock.contacts().length, 2);
  });
});

// ---- scenarios -------------------------------------------------------------------------------

Deno.test("scenario always-503 (optionally with Retry-After), then back to success", async () => {
  await withMock(TWO, async (h) => {
    h.mock.setScenario("always-503");
    for (let i = 0; i < 3; i++) {
      const a = await h.patch(CONTACT_A, true);
      assertEquals([a.status, a.headers.get("Retry-After")], [503, null]);
    }
    h.mock.setScenario({ kind: "always-503", retryAfterSeconds: 4 });
    assertEquals((await h.patch(CONTACT_A, true)).headers.get("Retry-After"), "4");
    assertEquals(h.mock.contact(CONTACT_A)?.visible, false);
    h.mock.setScenario("always-success");
    assertEquals((await h.patch(CONTACT_A, true)).status, 204);
  });
});

Deno.test("scenario fail-twice-then-succeed counts per contact", async () => {
  await withMock({ ...TWO, scenario: "fail-twice-then-succeed" }, async (h) => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await h.patch(CONTACT_A, true)).status);
      statuses.push((await h.patch(CONTACT_B, true)).status);
    }
    assertEquals(statuses, [503, 503, 503, 503, 204, 204]);
    assertEquals(h.mock.contact(CONTACT_B)?.visible, true);
  });
});

Deno.test("scenario 429 carries Dataverse's body and a configurable Retry-After", async () => {
  await withMock(TWO, async (h) => {
    h.mock.setScenario({ kind: "429", retryAfterSeconds: 3, times: 1 });
    const a = await h.patch(CONTACT_A, true);
    assertEquals(a.status, 429);
    assertEquals(a.headers.get("Retry-After"), "3");
    assertEquals(body<DataverseErrorBody>(a).error, {
      code: "0x80072322",
      message: "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
    });
    assertEquals((await h.patch(CONTACT_A, true)).status, 204);
  });
});

Deno.test("scenarios 401, 403, 404 on the API with valid tokens", async () => {
  await withMock(TWO, async (h) => {
    h.mock.setScenario("401");
    const u = await h.patch(CONTACT_A, true);
    assertEquals(u.status, 401);
    assertStringIncludes(u.headers.get("WWW-Authenticate") ?? "", 'error="invalid_token"');
    h.mock.setScenario("403");
    const f = await h.patch(CONTACT_A, true);
    assertEquals([f.status, errorCode(f)], [403, "0x80040220"]);
    h.mock.setScenario("404");
    const n = await h.patch(CONTACT_A, true);
    assertEquals(
      body<DataverseErrorBody>(n).error.message,
      `contact With Id = ${CONTACT_A} Does Not Exist`,
    );
    assertEquals(h.mock.contact(CONTACT_A)?.visible, false);
    assertEquals(h.mock.counters().faultsInjected, 3);
  });
});

Deno.test("scenario invalid_client rejects every token request; issued tokens still work", async () => {
  await withMock(TWO, async (h) => {
    const t = await h.token();
    h.mock.setScenario("invalid_client");
    const a = await h.tokenCall();
    assertEquals([a.status, body<{ error: string }>(a).error], [401, "invalid_client"]);
    assertEquals(body<{ error_codes: number[] }>(a).error_codes, [7000215]);
    assertEquals((await h.patch(CONTACT_A, true, { token: t })).status, 204);
    assertEquals(h.mock.counters().tokenRejections, 1);
  });
});

Deno.test("scenario token-down: token endpoint 503, API still accepts valid tokens", async () => {
  await withMock(TWO, async (h) => {
    const t = await h.token();
    h.mock.setScenario({ kind: "token-down", retryAfterSeconds: 2 });
    const a = await h.tokenCall();
    assertEquals([a.status, a.headers.get("Retry-After")], [503, "2"]);
    assertEquals(body<{ error: string }>(a).error, "temporarily_unavailable");
    assertEquals((await h.api("GET", "WhoAmI", { token: t })).status, 200);
  });
});

Deno.test("scenario slow trips a client timeout; the mock is not held up", async () => {
  await withMock({ ...TWO, scenario: { kind: "slow", delayMs: 5000 } }, async (h) => {
    const t = await h.token(); // slow targets the API by default
    const started = performance.now();
    await assertRejects(() =>
      h.patch(CONTACT_A, true, { token: t, signal: AbortSignal.timeout(200) })
    );
    assert(performance.now() - started < 2000, "client timeout did not fire");
    h.mock.setScenario({ kind: "slow", delayMs: 300, target: "token", times: 1 });
    const t0 = performance.now();
    assertEquals((await h.tokenCall()).status, 200);
    assert(performance.now() - t0 >= 290, "token endpoint was not delayed");
  });
});

Deno.test("scenario reset drops the request without an answer (fetch rejects)", async () => {
  await withMock({ ...TWO, scenario: { kind: "reset", times: 1 } }, async (h) => {
    const t = await h.token();
    await assertRejects(() => h.patch(CONTACT_A, true, { token: t }), TypeError);
    const rec = h.mock.requests.at(-1);
    assertEquals([rec?.outcome, rec?.status, rec?.contactId], ["reset", undefined, CONTACT_A]);
    assertEquals((await h.patch(CONTACT_A, true, { token: t })).status, 204);
    assertEquals(h.mock.counters().resets, 1);
  });
});

Deno.test("scenario reset over HTTP/1.1 closes the connection", async () => {
  await withMock({ ...TWO, scenario: "reset" }, async (h) => {
    const t = await h.token();
    const h1 = Deno.createHttpClient({ caCerts: [h.ca.caCertPem], http2: false });
    try {
      const err = await assertRejects(() =>
        fetch(`${h.mock.baseUrl}/api/data/v9.2/WhoAmI`, {
          client: h1,
          headers: { Authorization: `Bearer ${t}` },
        }), TypeError);
      assertStringIncludes(err.message, "connection closed");
    } finally {
      h1.close();
    }
  });
});

Deno.test("per-contact scenario wins: one contact 403, the other 204", async () => {
  await withMock({ ...TWO, scenario: "always-503" }, async (h) => {
    h.mock.setContactScenario(CONTACT_A.toUpperCase(), "403");
    h.mock.setContactScenario(CONTACT_B, "always-success");
    const [a, b] = await Promise.all([h.patch(CONTACT_A, true), h.patch(CONTACT_B, true)]);
    assertEquals([a.status, b.status], [403, 204]);
    assertEquals([h.mock.contact(CONTACT_A)?.visible, h.mock.contact(CONTACT_B)?.visible], [
      false,
      true,
    ]);
    assertEquals((await h.api("GET", "WhoAmI")).status, 503); // global still applies elsewhere
    h.mock.setContactScenario(CONTACT_A, null);
    assertEquals((await h.patch(CONTACT_A, true)).status, 503);
  });
});

// ---- limiter and concurrency -----------------------------------------------------------------

Deno.test("limiter: requests over the window get Dataverse's 429 until the window slides", async () => {
  await withMock({ ...TWO, limiter: { requests: 3, windowMs: 1200 } }, async (h) => {
    const t = await h.token(); // token requests are not limited
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await h.patch(CONTACT_A, i % 2 === 0, { token: t })).status);
    }
    assertEquals(statuses, [204, 204, 204, 429]);
    const over = await h.patch(CONTACT_A, true, { token: t });
    assertEquals(body<DataverseErrorBody>(over).error, {
      code: "0x80072322",
      message: "Number of requests exceeded the limit of 3 over time window of 1.2 seconds.",
    });
    // ceil(time until the first request leaves the 1.2 s window): 2, or 1 on a slow machine
    assertMatch(over.headers.get("Retry-After") ?? "", /^[12]$/);
    await sleep(1250);
    assertEquals((await h.patch(CONTACT_A, true, { token: t })).status, 204);
    assertEquals(h.mock.counters().throttled, 2);
  });
});

Deno.test("limiter: concurrency bound answers 0x80072326", async () => {
  await withMock({
    ...TWO,
    latencyMs: 300,
    limiter: { requests: 100, windowMs: 60_000, concurrent: 1 },
  }, async (h) => {
    const t = await h.token();
    const answers = await Promise.all([
      h.patch(CONTACT_A, true, { token: t }),
      h.patch(CONTACT_B, true, { token: t }),
    ]);
    const statuses = answers.map((a) => a.status).sort();
    assertEquals(statuses, [204, 429]);
    const throttled = answers.find((a) => a.status === 429);
    assertEquals(throttled && errorCode(throttled), "0x80072326");
  });
});

Deno.test("concurrency is observed overall and per contact", async () => {
  await withMock({ ...TWO, latencyMs: 150 }, async (h) => {
    const t = await h.token();
    await Promise.all([
      h.patch(CONTACT_A, true, { token: t }),
      h.patch(CONTACT_B, true, { token: t }),
    ]);
    assertEquals([h.mock.maxConcurrent, h.mock.maxConcurrentPerContact], [2, 1]);
    await Promise.all([
      h.patch(CONTACT_A, true, { token: t }),
      h.patch(CONTACT_A, false, { token: t }),
    ]);
    assertEquals([h.mock.maxConcurrent, h.mock.maxConcurrentPerContact], [2, 2]);
    assertEquals(h.mock.counters().inFlight, 0);
  });
});

// ---- recording and reset ---------------------------------------------------------------------

Deno.test("every request is recorded, token requests included; clear and reset", async () => {
  await withMock({ ...TWO, scenario: "403" }, async (h) => {
    await h.patch(CONTACT_A, true);
    await h.fetch(`${h.mock.baseUrl}/nowhere`);
    const kinds = h.mock.requests.map((r) => `${r.seq}:${r.kind}:${r.method}:${r.status}`);
    assertEquals(kinds, ["1:token:POST:200", "2:api:PATCH:403", "3:other:GET:404"]);
    const tokenReq = h.mock.requests[0];
    assertEquals(new URLSearchParams(tokenReq.body).get("grant_type"), "client_credentials");
    assertEquals(tokenReq.path, `/${h.mock.tenantId}/oauth2/v2.0/token`);
    assert(tokenReq.time > Date.now() - 60_000 && tokenReq.time <= Date.now(), "time is epoch ms");
    h.mock.clearRequests();
    assertEquals(h.mock.requests.length, 0);
    h.mock.setScenario("always-503");
    h.mock.reset(); // back to the start scenario (403), counters cleared
    assertEquals(h.mock.scenario(), { kind: "403" });
    assertEquals(h.mock.counters().patches, 0);
    assertEquals(h.mock.contacts().length, 2);
  });
});

Deno.test("startDynamicsMock validates options and leaves nothing running on error", async () => {
  const ca = await testCa();
  await assertRejects(
    () => startDynamicsMock({ certPem: ca.certPem, keyPem: ca.keyPem, contacts: ["nope"] }),
    Error,
    "GUID",
  );
  // The test sanitizers fail this test if the listener opened before validation stayed open.
});

Deno.test("recordLimit keeps only the newest requests; seq keeps counting", async () => {
  await withMock({ ...TWO, recordLimit: 2 }, async (h) => {
    await h.patch(CONTACT_A, true);
    await h.patch(CONTACT_B, true);
    await h.api("GET", "WhoAmI");
    assertEquals(h.mock.requests.map((r) => r.seq), [3, 4]);
  });
});
