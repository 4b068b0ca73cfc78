// The core flows end to end: SQL status change → outbox row → process_queue on the real function
// → PATCH at the HTTPS mock → queue, audit, mapping, failure, dead-letter and alert rows.
// Credentials come from the function's environment here (Vault: auth_test.ts).
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite, type Harness, type Mentor } from "./harness.ts";

const MAX_ATTEMPTS = 3;
const suite = e2eSuite({
  credentials: "env",
  env: { HLF_SYNC_MAX_ATTEMPTS: String(MAX_ATTEMPTS) },
});

/** The rows and portal state of a mentor whose one job synced `visible` in one attempt. */
async function assertSyncedOnce(h: Harness, m: Mentor, visible: boolean, event: string) {
  const jobs = await h.jobs(m.id);
  assertEquals(jobs.length, 1, "one job");
  assertEquals(jobs[0].status, "done");
  assertEquals(jobs[0].operation, visible ? "restore" : "remove");
  assertEquals(jobs[0].triggered_by_event, event);
  assertEquals(jobs[0].attempts, 1);
  assertEquals(jobs[0].last_error, null);
  assertEquals(h.portalVisible(m.contactId), visible, "portal shows the desired state");
  assertEquals(await h.lastSyncedVisible(m.id), visible, "mapping records the synced state");
  const patches = h.patches(m.contactId);
  assertEquals(patches.length, 1, "one PATCH");
  const p = patches[0];
  assertEquals(p.path, `/api/data/v9.2/contacts(${m.contactId})`);
  assertEquals(JSON.parse(p.body), { hlf_portalvisible: visible });
  assertEquals(p.status, 204);
  assertEquals(p.headers["odata-maxversion"], "4.0");
  assertEquals(p.headers["odata-version"], "4.0");
  assertEquals(p.headers["if-match"], "*");
  assert(p.headers["content-type"]?.startsWith("application/json"), "json content type");
  assert(/^Bearer \S+$/.test(p.headers["authorization"] ?? ""), "bearer token sent");
  const audit = (await h.audit(m.id)).filter((a) => a.job_id === jobs[0].id);
  assertEquals(
    audit.map((a) => [a.event, a.operation, a.http_status, a.error_code]),
    [
      ["dynamics_attempt", jobs[0].operation, 204, null],
      ["synced", jobs[0].operation, null, null],
    ],
  );
  assertEquals(await h.failures(m.id), []);
  assertEquals(await h.deadLetters(m.id), []);
  assertEquals(await h.alerts(), []);
}

suite.test("paused → removal from the portal", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, chapters: [o.hlfA] });
  assertEquals(h.portalVisible(m.contactId), true);
  await h.setStatus(m.id, "paused");
  const [job] = await h.jobs(m.id);
  assertEquals([job.status, job.operation], ["pending", "remove"], "outbox row in the same tx");
  assertEquals(await h.processQueue(), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  await assertSyncedOnce(h, m, false, "status_change");
  assertEquals(await h.mentorStatus(m.id), "paused");
});

suite.test("expired_cert → removal from the portal", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, chapters: [o.hlfA] });
  await h.sql`update public.certifications set expires_at = now() - interval '1 day'
              where mentor_id = ${m.id}`;
  await h.sql`delete from public.sync_queue`; // the certification trigger's own job; test the status path
  await h.setStatus(m.id, "expired_cert");
  assertEquals((await h.jobs(m.id)).map((j) => j.operation), ["remove"]);
  assertEquals(await h.processQueue(), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  await assertSyncedOnce(h, m, false, "status_change");
});

suite.test("reinstated with a valid certification → restore", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, chapters: [o.hlfA], status: "paused" });
  assertEquals(h.portalVisible(m.contactId), false);
  await h.setStatus(m.id, "active");
  assertEquals((await h.jobs(m.id)).map((j) => [j.status, j.operation]), [["pending", "restore"]]);
  assertEquals(await h.processQueue(), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  await assertSyncedOnce(h, m, true, "status_change");
});

suite.test("reinstated without a valid certification → nothing sent, warning audited", async (h) => {
  const o = await h.seedOrgs();
  const expired = await h.mentor({ org: o.hlf, status: "paused", certDays: -3 });
  const none = await h.mentor({ org: o.hlf, status: "expired_cert", certDays: null });
  for (const m of [expired, none]) await h.setStatus(m.id, "active");
  assertEquals(await h.jobs(), [], "no job");
  for (const m of [expired, none]) {
    assertEquals(
      (await h.audit(m.id)).map((a) => [a.event, a.operation, a.error_code, a.job_id]),
      [["no_valid_certification", "restore", "NO_VALID_CERTIFICATION", null]],
    );
  }
  assertEquals(await h.processQueue(), { processed: 0, synced: 0, retrying: 0, dead: 0 });
  assertEquals(h.mock.requests.filter((r) => r.kind === "api"), [], "nothing sent to Dynamics");
  assertEquals(h.portalVisible(expired.contactId), false);
  assertEquals(h.portalVisible(none.contactId), false);
});

suite.test("NHF (sync not enabled) → no job, nothing sent", async (h) => {
  const o = await h.seedOrgs();
  const disabled = await h.org("NHF-2", false); // an explicit 'disabled' settings row too
  const a = await h.mentor({ org: o.nhf, chapters: [o.nhfA], portalVisible: true });
  const b = await h.mentor({ org: disabled, portalVisible: true });
  for (const m of [a, b]) await h.setStatus(m.id, "paused");
  await h.sql`insert into public.certifications (mentor_id, expires_at)
              values (${a.id}, now() + interval '1 year')`;
  await h.setStatus(a.id, "active");
  assertEquals(await h.jobs(), []);
  assertEquals(await h.audit(), []);
  assertEquals(await h.processQueue(), { processed: 0, synced: 0, retrying: 0, dead: 0 });
  assertEquals(h.mock.requests.length, 0, "no request at all reached Dynamics");
  assertEquals(h.portalVisible(a.contactId), true);
});

suite.test("transient errors are retried in the request (fail twice, then succeed)", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf });
  h.mock.setContactScenario(m.contactId, "fail-twice-then-succeed");
  await h.setStatus(m.id, "paused");
  assertEquals(await h.processQueue(), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  assertEquals(h.patches(m.contactId).map((p) => p.status), [503, 503, 204]);
  const [job] = await h.jobs(m.id);
  assertEquals([job.status, job.attempts], ["done", 1], "one queue-level attempt");
  assertEquals(
    (await h.audit(m.id)).map((a) => [a.event, a.http_status, a.attempt]),
    [
      ["dynamics_attempt", 503, 1],
      ["dynamics_attempt", 503, 2],
      ["dynamics_attempt", 204, 3],
      ["synced", null, 1],
    ],
  );
  assertEquals(h.portalVisible(m.contactId), false);
  assertEquals(await h.lastSyncedVisible(m.id), false);
  assertEquals(await h.failures(m.id), []);
});

suite.test("a job that fails one invocation is retried by the next and heals", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf });
  h.mock.setContactScenario(m.contactId, { kind: "always-503", times: 3 });
  await h.setStatus(m.id, "paused");
  assertEquals(await h.processQueue(1), { processed: 1, synced: 0, retrying: 1, dead: 0 });
  let [job] = await h.jobs(m.id);
  assertEquals([job.status, job.attempts], ["pending", 1]);
  assert(job.last_error?.includes("SERVER_ERROR"), `last_error names the error: ${job.last_error}`);
  const [failure] = await h.failures(m.id);
  assertEquals([failure.error_code, failure.resolved_at], ["SERVER_ERROR", null], "failure open");
  assertEquals((await h.alerts()).map((a) => [a.kind, a.mentor_id]), [["sync_pending", m.id]]);
  const [pending] = await h.alerts("sync_pending");
  assert(
    pending.message.startsWith("Dynamics sync pending — mentor may still be visible on the portal"),
    `coordinators read what the pending alert means: ${pending.message}`,
  );
  assertEquals(h.portalVisible(m.contactId), true, "portal not yet changed");

  assertEquals(await h.processQueue(1), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  [job] = await h.jobs(m.id);
  assertEquals([job.status, job.attempts, job.last_error], ["done", 2, null]);
  assert((await h.failures(m.id))[0].resolved_at !== null, "failure resolved by the sync");
  assert((await h.alerts())[0].acknowledged_at !== null, "sync_pending alert acknowledged");
  assertEquals(h.portalVisible(m.contactId), false);
  assertEquals(
    (await h.audit(m.id)).map((a) => [a.event, a.http_status]),
    [
      ["dynamics_attempt", 503],
      ["dynamics_attempt", 503],
      ["dynamics_attempt", 503],
      ["retry_scheduled", null],
      ["dynamics_attempt", 204],
      ["synced", null],
    ],
  );
});

suite.test(
  `after ${MAX_ATTEMPTS} failed invocations: failure row, dead letter and alert`,
  async (h) => {
    const o = await h.seedOrgs();
    const m = await h.mentor({ org: o.hlf });
    h.mock.setContactScenario(m.contactId, "always-503");
    await h.setStatus(m.id, "paused");
    for (let i = 1; i < MAX_ATTEMPTS; i++) {
      assertEquals(await h.processQueue(1), { processed: 1, synced: 0, retrying: 1, dead: 0 });
      const [job] = await h.jobs(m.id);
      assertEquals([job.status, job.attempts], ["pending", i]);
      assertEquals((await h.failures(m.id)).length, 1, "one open failure row");
      assertEquals(await h.deadLetters(), []);
    }
    assertEquals(await h.processQueue(1), { processed: 1, synced: 0, retrying: 0, dead: 1 });
    const [job] = await h.jobs(m.id);
    assertEquals([job.status, job.attempts], ["dead", MAX_ATTEMPTS]);
    const [dl] = await h.deadLetters(m.id);
    assertEquals([dl.job_id, dl.operation, dl.error_code], [job.id, "remove", "SERVER_ERROR"]);
    const failures = await h.failures(m.id);
    assertEquals(failures.length, 1);
    assertEquals(failures[0].resolved_at, null, "the failure stays open: portal may be wrong");
    const alerts = await h.alerts("dead_letter");
    assertEquals(alerts.map((a) => a.mentor_id), [m.id]);
    assertEquals(h.patches(m.contactId).length, MAX_ATTEMPTS * 3, "3 attempts per invocation");
    assertEquals(
      (await h.audit(m.id)).filter((a) => a.event !== "dynamics_attempt").map((a) => a.event),
      [...Array(MAX_ATTEMPTS - 1).fill("retry_scheduled"), "dead_lettered"],
    );
    assertEquals(await h.processQueue(), { processed: 0, synced: 0, retrying: 0, dead: 0 });
    assertEquals(h.portalVisible(m.contactId), true);
    assertEquals(await h.mentorStatus(m.id), "paused", "the mentor's own status is untouched");
  },
);

suite.test("isolation: one contact 403, the other 200, each reaches its own end", async (h) => {
  const o = await h.seedOrgs();
  const bad = await h.mentor({ org: o.hlf });
  const good = await h.mentor({ org: o.hlf });
  h.mock.setContactScenario(bad.contactId, "403");
  await h.setStatus(bad.id, "paused");
  await h.setStatus(good.id, "paused");
  const summary = await h.processQueue();
  assertEquals(summary.processed, 2);
  assertEquals(summary.synced, 1);
  assertEquals(h.patches(bad.contactId).map((p) => p.status), [403], "a 403 is never retried");
  const [badJob] = await h.jobs(bad.id);
  assertEquals(badJob.status, "dead", "permanent error: dead letter right away");
  assertEquals((await h.deadLetters(bad.id)).map((d) => d.error_code), ["FORBIDDEN"]);
  assertEquals((await h.failures(bad.id)).map((f) => f.error_code), ["FORBIDDEN"]);
  assertEquals((await h.alerts("dead_letter")).map((a) => a.mentor_id), [bad.id]);
  assertEquals(h.portalVisible(bad.contactId), true);
  assertEquals(await h.lastSyncedVisible(bad.id), true, "nothing recorded as synced");
  // The healthy mentor is unaffected.
  assertEquals(h.patches(good.contactId).map((p) => p.status), [204]);
  assertEquals((await h.jobs(good.id)).map((j) => j.status), ["done"]);
  assertEquals(h.portalVisible(good.contactId), false);
  assertEquals(await h.lastSyncedVisible(good.id), false);
  assertEquals(await h.failures(good.id), []);
});

suite.test("one token is fetched and reused across jobs and invocations", async (h) => {
  const fn = await h.spawnFunction(); // a cold isolate: no cached token yet
  try {
    const o = await h.seedOrgs();
    const mentors: Mentor[] = [];
    for (let i = 0; i < 6; i++) mentors.push(await h.mentor({ org: o.hlf }));
    for (const m of mentors.slice(0, 3)) await h.setStatus(m.id, "paused");
    assertEquals((await h.processQueue(undefined, fn)).synced, 3);
    for (const m of mentors.slice(3)) await h.setStatus(m.id, "paused");
    assertEquals((await h.processQueue(undefined, fn)).synced, 3);
    const tokens = h.tokenRequests();
    assertEquals(tokens.length, 1, "one token request for six jobs in two invocations");
    const form = new URLSearchParams(tokens[0].body);
    assertEquals(form.get("grant_type"), "client_credentials");
    assertEquals(form.get("client_id"), h.mock.clientId);
    assertEquals(form.get("scope"), h.mock.scope);
    const bearers = new Set(h.patches().map((p) => p.headers["authorization"]));
    assertEquals(bearers.size, 1, "every PATCH carried the same token");
  } finally {
    await h.killFunction(fn);
  }
});

suite.test("a Database Webhook payload drains the queue", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, name: "Kari Nordmann" });
  await h.setStatus(m.id, "paused");
  const base = { id: m.id, organization_id: o.hlf, full_name: "Kari Nordmann" };
  const r = await h.invoke({
    type: "UPDATE",
    table: "peer_mentors",
    schema: "public",
    record: { ...base, status: "paused" },
    old_record: { ...base, status: "active" },
  });
  assertEquals(r.status, 200, r.text);
  assertEquals(r.json, { processed: 1, synced: 1, retrying: 0, dead: 0 });
  await assertSyncedOnce(h, m, false, "status_change");
});

suite.test("sync_mentor: 200 synced, for a mentor whose portal listing is wrong", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, status: "paused", portalVisible: true });
  const r = await h.invoke({ action: "sync_mentor", mentor_id: m.id });
  assertEquals(r.status, 200, r.text);
  assertEquals(r.json, { mentor_id: m.id, visible: false, outcome: "synced" });
  await assertSyncedOnce(h, m, false, "manual_coordinator_action");
});

suite.test("sync_mentor: 502 DYNAMICS_SYNC_FAILED leaves the job queued", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, status: "paused", portalVisible: true });
  h.mock.setContactScenario(m.contactId, "always-503");
  const before = await h.sql`select * from public.peer_mentors where id = ${m.id}`;
  const r = await h.invoke<{ error: { code: string; message: string } }>({
    action: "sync_mentor",
    mentor_id: m.id,
  });
  assertEquals(r.status, 502, r.text);
  assertEquals(r.json.error.code, "DYNAMICS_SYNC_FAILED");
  assert(r.json.error.message.includes("retried in the background"), r.json.error.message);
  assertEquals(h.patches(m.contactId).length, 3, "three attempts in the request");
  const [job] = await h.jobs(m.id);
  assertEquals([job.status, job.triggered_by_event], ["pending", "manual_coordinator_action"]);
  const [failure] = await h.failures(m.id);
  assertEquals([failure.error_code, failure.resolved_at, failure.job_id], [
    "SERVER_ERROR",
    null,
    job.id,
  ]);
  const after = await h.sql`select * from public.peer_mentors where id = ${m.id}`;
  assertEquals(after, before, "the mentor's row is untouched");
  assertEquals(await h.lastSyncedVisible(m.id), true);
  // The background retry heals it once Dynamics is back.
  h.mock.setContactScenario(m.contactId, null);
  assertEquals(await h.processQueue(), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  assertEquals(h.portalVisible(m.contactId), false);
  assert((await h.failures(m.id))[0].resolved_at !== null);
});

suite.test("sync_mentor without a contact mapping → 502, dead letter, alert, no retry promised", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, contactId: null });
  const r = await h.invoke<{ error: { code: string; message: string; outcome: string } }>({
    action: "sync_mentor",
    mentor_id: m.id,
  });
  assertEquals([r.status, r.json.error.code, r.json.error.outcome], [
    502,
    "DYNAMICS_SYNC_FAILED",
    "dead_letter",
  ]);
  assert(!r.json.error.message.includes("retried in the background"), r.json.error.message);
  assertEquals((await h.jobs(m.id)).map((j) => j.status), ["dead"]);
  assertEquals((await h.deadLetters(m.id)).map((d) => d.error_code), ["NO_CONTACT_MAPPING"]);
  assertEquals((await h.alerts("dead_letter")).map((a) => a.mentor_id), [m.id]);
  assertEquals(h.mock.requests.length, 0, "no live search in Dynamics");
});

suite.test("the secret scan itself notices a planted secret or token", async (h) => {
  const planted = [
    h.clientSecret,
    h.serviceRoleKey,
    h.jwtSecret,
    "mock.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig",
  ];
  for (const secret of planted) {
    h.responses.push(`{"leak":"${secret}"}`);
    const findings = await h.secretFindings();
    h.responses.pop();
    assert(findings.length > 0, `scan missed ${secret.slice(0, 12)}…`);
  }
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf });
  const [row] = await h.sql<{ id: number }[]>`
    insert into public.sync_alerts (kind, mentor_id, message)
    values ('divergence', ${m.id}, ${"x " + h.serviceRoleKey}) returning id::int`;
  assert((await h.secretFindings()).some((f) => f.includes("sync_alerts")), "row scanned");
  await h.sql`delete from public.sync_alerts where id = ${row.id}`;
});

suite.finish();
