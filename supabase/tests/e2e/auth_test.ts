// Who may call what, and what bad requests get: coordinator JWTs (own chapter, other chapter,
// forged, expired, missing), the status action's scope, malformed input (nothing changes), the
// Flutter app's call through supabase-js, and Azure AD credential failures (immediate alert, job
// kept, attempts not consumed). Credentials come from Vault here (the env path: flows_test.ts).
import { createClient, FunctionsHttpError } from "@supabase/supabase-js";
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite, type Harness, randomSecret } from "./harness.ts";

const suite = e2eSuite({ credentials: "vault" });

interface ErrorBody {
  error: { code: string; message: string };
}

/** Two HLF chapters, a mentor in each (both paused, still listed), a coordinator of chapter A. */
async function world(h: Harness) {
  const o = await h.seedOrgs();
  const mine = await h.mentor({
    org: o.hlf,
    chapters: [o.hlfA],
    status: "paused",
    portalVisible: true,
  });
  const other = await h.mentor({
    org: o.hlf,
    chapters: [o.hlfB],
    status: "paused",
    portalVisible: true,
  });
  const coordinator = await h.coordinator([o.hlfA]);
  return { o, mine, other, coordinator, token: await h.jwt(coordinator) };
}

suite.test("coordinator JWT: force sync of a mentor in their own chapter", async (h) => {
  const w = await world(h);
  const r = await h.invoke({ action: "sync_mentor", mentor_id: w.mine.id }, { token: w.token });
  assertEquals(r.status, 200, r.text);
  assertEquals(r.json, { mentor_id: w.mine.id, visible: false, outcome: "synced" });
  assertEquals(h.portalVisible(w.mine.contactId), false);
  assertEquals(await h.lastSyncedVisible(w.mine.id), false);
  const [job] = await h.jobs(w.mine.id);
  assertEquals([job.status, job.triggered_by_event], ["done", "manual_coordinator_action"]);
  assertEquals(h.tokenRequests().length <= 1, true);
});

suite.test("coordinator JWT: another chapter's mentor → 403, nothing changes", async (h) => {
  const w = await world(h);
  const before = await h.snapshot();
  for (const body of [{ action: "sync_mentor", mentor_id: w.other.id }]) {
    const r = await h.invoke<ErrorBody>(body, { token: w.token });
    assertEquals(r.status, 403, r.text);
    assertEquals(r.json.error.code, "FORBIDDEN");
  }
  // Service-only actions are refused to coordinators too.
  for (
    const body of [
      { action: "process_queue" },
      { action: "reconcile", dry_run: true },
      { action: "health" },
      { action: "expiry_check" },
      { action: "redrive", dead_letter_id: 1 },
    ]
  ) {
    const r = await h.invoke<ErrorBody>(body, { token: w.token });
    assertEquals(r.status, 403, `${body.action}: ${r.text}`);
    assertEquals(r.json.error.code, "FORBIDDEN");
  }
  assertEquals(await h.snapshot(), before);
  assertEquals(h.mock.requests.length, 0);
});

suite.test("forged, expired, wrong-role or missing credentials → 401, nothing changes", async (h) => {
  const w = await world(h);
  const before = await h.snapshot();
  const body = { action: "sync_mentor", mentor_id: w.mine.id };
  const [header, payload] = w.token.split(".");
  const tampered = `${header}.${
    btoa(JSON.stringify({ ...JSON.parse(atob(payload)), sub: crypto.randomUUID() }))
      .replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_")
  }.${w.token.split(".")[2]}`;
  const cases: [string, string | null, Record<string, string>?][] = [
    ["forged signature", await h.jwt(w.coordinator, { secret: randomSecret("attacker") })],
    ["tampered payload", tampered],
    ["expired", await h.jwt(w.coordinator, { expiresIn: -120 })],
    ["anon role", await h.jwt(w.coordinator, { role: "anon" })],
    ["not a JWT", "not-a-jwt"],
    ["missing", null],
    ["wrong scheme", null, { authorization: `Basic ${btoa("a:b")}` }],
    ["service key with a suffix", h.serviceRoleKey + "x"],
  ];
  for (const [name, token, headers] of cases) {
    const r = await h.invoke<ErrorBody>(body, { token, headers });
    assertEquals(r.status, 401, `${name}: ${r.text}`);
    assertEquals(r.json.error.code, "UNAUTHORIZED", name);
  }
  assertEquals(await h.snapshot(), before);
  assertEquals(h.mock.requests.length, 0);
});

suite.test("status: a coordinator sees only their chapters; the service sees all", async (h) => {
  const w = await world(h);
  const both = await h.mentor({ org: w.o.hlf, chapters: [w.o.hlfA, w.o.hlfB] });
  await h.setStatus(both.id, "paused"); // an open job for the shared mentor
  type StatusBody = {
    mentors: {
      mentor_id: string;
      desired_visible: boolean;
      last_synced_visible: boolean | null;
      open_job: { id: number; status: string } | null;
      open_failure: unknown;
    }[];
  };
  const ids = (r: { json: StatusBody }) => r.json.mentors.map((m) => m.mentor_id).sort();

  const own = await h.invoke<StatusBody>({ action: "status" }, { token: w.token });
  assertEquals(own.status, 200, own.text);
  assertEquals(ids(own), [w.mine.id, both.id].sort());
  const asked = await h.invoke<StatusBody>(
    { action: "status", mentor_ids: [w.other.id, both.id] },
    { token: w.token },
  );
  assertEquals(asked.status, 200, asked.text);
  assertEquals(ids(asked), [both.id], "other chapters' mentors are left out");
  const shared = asked.json.mentors[0];
  assertEquals(shared.desired_visible, false);
  assertEquals(shared.last_synced_visible, true);
  assertEquals(shared.open_job?.status, "pending");

  const all = await h.invoke<StatusBody>({ action: "status" });
  assertEquals(all.status, 200, all.text);
  assertEquals(ids(all), [w.mine.id, w.other.id, both.id].sort());

  const stranger = await h.invoke<StatusBody>({ action: "status" }, {
    token: await h.jwt(crypto.randomUUID()),
  });
  assertEquals([stranger.status, stranger.json.mentors], [200, []]);
});

suite.test("bad input → the right error code, the database and Dynamics untouched", async (h) => {
  const w = await world(h);
  const before = await h.snapshot();
  const big = JSON.stringify({ action: "status", pad: "x".repeat(70 * 1024) });
  const stream = () =>
    new ReadableStream<Uint8Array>({
      start(c) {
        const chunk = new TextEncoder().encode("x".repeat(16 * 1024));
        for (let i = 0; i < 6; i++) c.enqueue(chunk);
        c.close();
      },
    });
  const cases: [string, number, string, Parameters<Harness["invoke"]>][] = [
    ["invalid JSON", 400, "BAD_REQUEST", [null, { raw: '{"action": "process_queue",' }]],
    ["empty body", 400, "BAD_REQUEST", [null, { raw: "" }]],
    ["JSON array", 400, "BAD_REQUEST", [null, { raw: "[1,2]" }]],
    ["JSON string", 400, "BAD_REQUEST", [null, { raw: '"process_queue"' }]],
    ["JSON null", 400, "BAD_REQUEST", [null, { raw: "null" }]],
    ["JSON number", 400, "BAD_REQUEST", [null, { raw: "42" }]],
    ["no action", 400, "BAD_REQUEST", [{ mentor_id: w.mine.id }]],
    ["unknown action", 400, "BAD_REQUEST", [{ action: "drop_everything" }]],
    ["action not a string", 400, "BAD_REQUEST", [{ action: 7 }]],
    ["bad uuid", 400, "BAD_REQUEST", [{ action: "sync_mentor", mentor_id: "1; drop table x" }]],
    ["uuid wrong type", 400, "BAD_REQUEST", [{ action: "sync_mentor", mentor_id: 12 }]],
    ["bad uuid in a list", 400, "BAD_REQUEST", [{ action: "status", mentor_ids: ["nope"] }]],
    ["max_jobs a string", 400, "BAD_REQUEST", [{ action: "process_queue", max_jobs: "5" }]],
    ["max_jobs zero", 400, "BAD_REQUEST", [{ action: "process_queue", max_jobs: 0 }]],
    ["unknown field", 400, "BAD_REQUEST", [{ action: "process_queue", force: true }]],
    ["dry_run not a boolean", 400, "BAD_REQUEST", [{ action: "reconcile", dry_run: "yes" }]],
    ["unknown mentor", 404, "NOT_FOUND", [{
      action: "sync_mentor",
      mentor_id: crypto.randomUUID(),
    }]],
    ["oversized body", 413, "PAYLOAD_TOO_LARGE", [null, { raw: big }]],
    ["oversized chunked body", 413, "PAYLOAD_TOO_LARGE", [null, { raw: stream() }]],
    ["PUT", 405, "METHOD_NOT_ALLOWED", [{ action: "status" }, { method: "PUT" }]],
    ["DELETE", 405, "METHOD_NOT_ALLOWED", [{ action: "status" }, { method: "DELETE" }]],
    ["PATCH", 405, "METHOD_NOT_ALLOWED", [{ action: "status" }, { method: "PATCH" }]],
  ];
  for (const [name, status, code, args] of cases) {
    const r = await h.invoke<ErrorBody>(...args);
    assertEquals(r.status, status, `${name}: ${r.text}`);
    assertEquals(r.json?.error?.code, code, `${name}: ${r.text}`);
    assert(typeof r.json.error.message === "string" && r.json.error.message.length > 0, name);
    assert(!/\bat .+:\d+:\d+/.test(r.text), `${name}: no stack trace in ${r.text}`);
  }
  const get = await h.invoke(null, { method: "GET" });
  assertEquals(get.status, 200, "GET is the liveness answer");
  assertEquals(await h.snapshot(), before);
  assertEquals(h.mock.requests.length, 0);
  assert(!h.functions[0].exited, "the function survived every bad request");
});

suite.test("the Flutter app's call: supabase-js functions.invoke with the user's JWT", async (h) => {
  const w = await world(h);
  const supabase = createClient(h.functions[0].origin, h.anonKey, {
    auth: { persistSession: false, autoRefreshToken: false },
  });
  const { data, error } = await supabase.functions.invoke("hlf-dynamics-sync", {
    body: { action: "sync_mentor", mentor_id: w.mine.id },
    headers: { Authorization: `Bearer ${w.token}` },
  });
  assertEquals(error, null);
  assertEquals(data, { mentor_id: w.mine.id, visible: false, outcome: "synced" });
  assertEquals(h.portalVisible(w.mine.contactId), false);

  const denied = await supabase.functions.invoke("hlf-dynamics-sync", {
    body: { action: "sync_mentor", mentor_id: w.other.id },
    headers: { Authorization: `Bearer ${w.token}` },
  });
  assert(denied.error instanceof FunctionsHttpError, `an HTTP error: ${denied.error}`);
  const res = denied.error.context as Response;
  assertEquals(res.status, 403);
  const body = await res.json() as ErrorBody;
  h.responses.push(JSON.stringify(body));
  assertEquals(body.error.code, "FORBIDDEN");
  assertEquals(h.portalVisible(w.other.contactId), true);

  const { data: status } = await supabase.functions.invoke("hlf-dynamics-sync", {
    body: { action: "status" },
    headers: { Authorization: `Bearer ${w.token}` },
  });
  h.responses.push(JSON.stringify(data), JSON.stringify(status));
  assertEquals(
    (status as { mentors: { mentor_id: string }[] }).mentors.map((m) => m.mentor_id),
    [w.mine.id],
  );
});

/** Runs `fn` against a fresh function process (no cached token), killed afterwards. */
async function withColdFunction(
  h: Harness,
  fn: (f: Awaited<ReturnType<Harness["spawnFunction"]>>) => Promise<void>,
) {
  const f = await h.spawnFunction();
  try {
    await fn(f);
  } finally {
    await h.killFunction(f);
  }
}

suite.test("invalid_client (rotated secret) → immediate auth alert, job kept, attempts kept", async (h) => {
  await withColdFunction(h, async (f) => {
    const o = await h.seedOrgs();
    const a = await h.mentor({ org: o.hlf });
    const b = await h.mentor({ org: o.hlf });
    // The secret is rotated at Azure AD; Vault still holds the old one.
    const rotated = randomSecret("e2e-rotated-secret");
    h.mock.setClientSecret(rotated);
    await h.setStatus(a.id, "paused");
    await h.setStatus(b.id, "paused");
    const s1 = await h.processQueue(undefined, f);
    assertEquals([s1.synced, s1.dead], [0, 0]);
    const alerts = await h.alerts("auth_failure");
    assertEquals(alerts.length, 1, "one auth_failure alert right away");
    assertEquals(h.patches().length, 0, "no PATCH without a token");
    const tokenCalls = h.tokenRequests().length;
    assert(tokenCalls >= 1 && tokenCalls <= 2, `token endpoint not hammered: ${tokenCalls}`);
    for (const j of await h.jobs()) {
      assertEquals([j.status, j.attempts], ["pending", 0], "queue attempts not consumed");
    }
    assertEquals(await h.deadLetters(), []);
    assert(
      (await h.audit()).some((r) => r.event === "auth_failure"),
      "the auth failure is audited",
    );
    const health = await h.invoke<ErrorBody>({ action: "health" }, { fn: f });
    assertEquals([health.status, health.json.error.code], [503, "AUTH_FAILED"]);
    assertEquals((await h.alerts("auth_failure")).length, 1, "deduplicated while open");

    // Operator writes the new secret to Vault: picked up without a restart.
    await h.writeVaultCredentials(rotated);
    await h.sql`update public.sync_queue set next_attempt_at = now() where status = 'pending'`;
    const s2 = await h.processQueue(undefined, f);
    assertEquals(s2.synced, 2, JSON.stringify(s2));
    assertEquals(h.portalVisible(a.contactId), false);
    assertEquals(h.portalVisible(b.contactId), false);
    const ok = await h.invoke({ action: "health" }, { fn: f });
    assertEquals([ok.status, ok.json], [200, { ok: true }]);
    assert((await h.alerts("auth_failure"))[0].acknowledged_at !== null, "alert cleared");
    const findings = await h.secretFindings([rotated]);
    assertEquals(findings, []);
  });
});

suite.test("401 from the Web API (after one forced refresh) → auth alert, job not dead", async (h) => {
  await withColdFunction(h, async (f) => {
    const o = await h.seedOrgs();
    const m = await h.mentor({ org: o.hlf });
    h.mock.setContactScenario(m.contactId, "401");
    await h.setStatus(m.id, "paused");
    const s = await h.processQueue(undefined, f);
    assertEquals([s.synced, s.dead], [0, 0]);
    const patches = h.patches(m.contactId);
    assertEquals(patches.map((p) => p.status), [401, 401], "one forced refresh, then stop");
    assertEquals(h.tokenRequests().length, 2, "the refresh fetched a new token");
    assertEquals((await h.alerts("auth_failure")).length, 1);
    const [job] = await h.jobs(m.id);
    assertEquals([job.status, job.attempts], ["pending", 0]);
    assertEquals(await h.deadLetters(), []);
    assertEquals(h.portalVisible(m.contactId), true);
  });
});

suite.finish();
