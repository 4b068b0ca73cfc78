/** The /__mock/ control API, in-process over HTTPS (createHttpClient with the test CA). */

import { assertEquals, assertStringIncludes } from "./assert.ts";
import { body, CONTACT_A, CONTACT_B, MISSING, withMock } from "./test_support.ts";
import type { Harness } from "./test_support.ts";
import type { ContactRecord, RecordedRequest } from "./dynamics_mock.ts";

function control(h: Harness, method: string, name: string, payload?: unknown) {
  return h.fetch(`${h.mock.baseUrl}/__mock/${name}`, {
    method,
    body: payload === undefined ? undefined : JSON.stringify(payload),
  });
}

Deno.test("control: steer scenarios globally and per contact", async () => {
  await withMock({ contacts: [CONTACT_A, CONTACT_B], controlApi: true }, async (h) => {
    const set = await control(h, "POST", "scenario", {
      scenario: { kind: "429", retryAfterSeconds: 2 },
    });
    assertEquals([set.status, body<{ scenario: unknown }>(set).scenario], [200, {
      kind: "429",
      retryAfterSeconds: 2,
    }]);
    assertEquals((await h.patch(CONTACT_A, true)).status, 429);
    await control(h, "POST", "scenario", { scenario: "always-success" });
    await control(h, "POST", "scenario", { scenario: "403", contactId: CONTACT_B });
    assertEquals((await h.patch(CONTACT_A, true)).status, 204);
    assertEquals((await h.patch(CONTACT_B, true)).status, 403);
    await control(h, "POST", "scenario", { scenario: null, contactId: CONTACT_B });
    assertEquals((await h.patch(CONTACT_B, true)).status, 204);
    const stats = body<{ counters: { patches: number }; scenario: unknown }>(
      await control(h, "GET", "stats"),
    );
    assertEquals([stats.counters.patches, stats.scenario], [4, { kind: "always-success" }]);
  });
});

Deno.test("control: bad input is 400, unknown route 404, wrong method 405", async () => {
  await withMock({ controlApi: true }, async (h) => {
    const bad = await control(h, "POST", "scenario", { scenario: "always-502" });
    assertEquals(bad.status, 400);
    assertStringIncludes(body<{ error: string }>(bad).error, "unknown scenario kind");
    assertEquals(
      (await control(h, "POST", "scenario", { scenario: "invalid_client", contactId: CONTACT_A }))
        .status,
      400,
    );
    assertEquals((await control(h, "POST", "contacts", { contacts: ["nope"] })).status, 400);
    assertEquals((await control(h, "POST", "limiter", { limiter: { requests: 0 } })).status, 400);
    assertEquals(
      (await h.fetch(`${h.mock.baseUrl}/__mock/scenario`, { method: "POST", body: "{" })).status,
      400,
    );
    assertEquals((await control(h, "GET", "nothing")).status, 404);
    assertEquals((await control(h, "DELETE", "requests")).status, 405);
    assertEquals(h.mock.scenario(), { kind: "always-success" });
  });
});

Deno.test("control: contacts, requests (control calls not recorded), reset", async () => {
  await withMock({ controlApi: true }, async (h) => {
    const added = await control(h, "POST", "contacts", {
      contacts: [CONTACT_A, { id: CONTACT_B, visible: true }, MISSING],
      remove: [MISSING],
    });
    assertEquals(body<{ count: number }>(added).count, 2);
    await h.patch(CONTACT_A, true);
    const contacts = body<ContactRecord[]>(await control(h, "GET", "contacts"));
    assertEquals(contacts, [
      { id: CONTACT_A, visible: true, version: 2 },
      { id: CONTACT_B, visible: true, version: 1 },
    ]);
    const all = body<RecordedRequest[]>(await control(h, "GET", "requests"));
    assertEquals(all.map((r) => r.kind), ["token", "api"]);
    const since = body<RecordedRequest[]>(await control(h, "GET", `requests?since=${all[0].seq}`));
    assertEquals(since.map((r) => [r.method, r.contactId]), [["PATCH", CONTACT_A]]);
    assertEquals((await control(h, "POST", "reset")).status, 204);
    assertEquals(body<RecordedRequest[]>(await control(h, "GET", "requests")), []);
    const replaced = await control(h, "POST", "contacts", { contacts: [MISSING], replace: true });
    assertEquals(body<{ count: number }>(replaced).count, 1);
  });
});

Deno.test("control: limiter and settings (secret rotation, token expiry, latency)", async () => {
  await withMock({ contacts: [CONTACT_A], controlApi: true }, async (h) => {
    const t = await h.token();
    await control(h, "POST", "limiter", { limiter: { requests: 1, windowMs: 60_000 } });
    assertEquals((await h.patch(CONTACT_A, true, { token: t })).status, 204);
    assertEquals((await h.patch(CONTACT_A, true, { token: t })).status, 429);
    await control(h, "POST", "limiter", { limiter: null });
    assertEquals((await h.patch(CONTACT_A, true, { token: t })).status, 204);
    await control(h, "POST", "settings", {
      clientSecret: "rotated",
      expireTokens: true,
      latencyMs: 0,
    });
    assertEquals((await h.patch(CONTACT_A, true, { token: t })).status, 401);
    assertEquals((await h.tokenCall()).status, 401);
    assertEquals((await h.tokenCall({ client_secret: "rotated" })).status, 200);
    assertEquals((await control(h, "POST", "settings", { latencyMs: "x" })).status, 400);
  });
});

Deno.test("control API is absent unless enabled", async () => {
  await withMock({}, async (h) => {
    const a = await control(h, "GET", "requests");
    assertEquals(a.status, 404);
    assertEquals(h.mock.requests.at(-1)?.kind, "other");
  });
});
