// The operator and scheduler actions end to end: reconcile (dry run and real), the nightly
// expiry_check, dead-letter redrive, health, and throttling (429 with Retry-After).
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite } from "./harness.ts";

const suite = e2eSuite({ credentials: "env" });

suite.test("reconcile: dry run reports, a real run re-queues divergent mentors", async (h) => {
  const o = await h.seedOrgs();
  const fine = await h.mentor({ org: o.hlf });
  const stale = await h.mentor({ org: o.hlf, status: "paused", portalVisible: true });
  const missing = await h.mentor({ org: o.hlf, portalVisible: false });
  await h.mentor({ org: o.nhf, portalVisible: true }); // sync disabled: never checked

  const dry = await h.invoke({ action: "reconcile", dry_run: true });
  assertEquals(dry.status, 200, dry.text);
  assertEquals([dry.json.checked, dry.json.divergent, dry.json.enqueued], [3, 2, 0]);
  assertEquals(await h.jobs(), []);
  const reads = h.mock.requests.filter((r) => r.kind === "api" && r.method === "GET");
  assert(reads.length >= 1, "read the portal");
  assert(decodeURIComponent(reads[0].url).includes("$select=contactid,hlf_portalvisible"));
  assert(/odata\.maxpagesize=\d+/.test(reads[0].headers["prefer"] ?? ""), "paged read");

  const real = await h.invoke({ action: "reconcile", dry_run: false });
  assertEquals([real.json.checked, real.json.divergent, real.json.enqueued], [3, 2, 2]);
  const jobs = await h.jobs();
  assertEquals(
    jobs.map((j) => [j.mentor_id, j.operation, j.triggered_by_event]).sort(),
    [[stale.id, "remove", "reconciliation"], [missing.id, "restore", "reconciliation"]].sort(),
  );
  assertEquals((await h.alerts("divergence")).length, 1);
  await h.drain();
  assertEquals(h.portalVisible(stale.contactId), false);
  assertEquals(h.portalVisible(missing.contactId), true);
  assertEquals(h.portalVisible(fine.contactId), true);
  const again = await h.invoke({ action: "reconcile", dry_run: true });
  assertEquals(again.json.divergent, 0, "converged");
});

interface ReconcileBody {
  checked: number;
  divergent: number;
  enqueued: number;
  dry_run: boolean;
  next_cursor: string | null;
  sync_lag: {
    mentors: number;
    max_lag_seconds: number | null;
    oldest_since: string | null;
    worst: { mentor_id: string; lag_seconds: number | null; last_synced_visible: boolean | null }[];
  };
}

suite.test("reconcile: a dry run changes nothing and reports the sync lag; a real run re-queues", async (h) => {
  const o = await h.seedOrgs();
  // Paused an hour ago, the portal still lists them: the queued job is an hour old.
  const late = await h.mentor({ org: o.hlf });
  await h.setStatus(late.id, "paused");
  await h.sql`update public.sync_queue set created_at = now() - interval '1 hour'
               where mentor_id = ${late.id}`;
  const never = await h.mentor({ org: o.hlf, lastSyncedVisible: null }); // portal right, never synced
  await h.mentor({ org: o.hlf }); // in sync
  await h.mentor({ org: o.nhf, status: "paused", portalVisible: true }); // sync disabled

  const before = await h.snapshot();
  const dry = await h.invoke<ReconcileBody>({ action: "reconcile", dry_run: true });
  assertEquals(dry.status, 200, dry.text);
  assertEquals([dry.json.checked, dry.json.divergent, dry.json.enqueued], [3, 1, 0]);
  assertEquals([dry.json.dry_run, dry.json.next_cursor], [true, null]);
  assertEquals(await h.snapshot(), before, "a dry run changes nothing: no job, no alert");
  assertEquals(h.patches(), []);
  const lag = dry.json.sync_lag;
  assertEquals(lag.mentors, 2, "the paused mentor and the never synced one");
  assert(lag.max_lag_seconds !== null && lag.max_lag_seconds >= 3600, JSON.stringify(lag));
  const [queued] = await h.sql<{ c: Date }[]>`
    select created_at as c from public.sync_queue where mentor_id = ${late.id}`;
  assertEquals(lag.oldest_since, queued.c.toISOString(), "lagging since the change was queued");
  assertEquals(lag.worst.map((w) => [w.mentor_id, w.last_synced_visible]), [
    [late.id, true],
    [never.id, null],
  ]);
  assertEquals(lag.worst[1].lag_seconds, null, "never synced, nothing queued: start unknown");

  const real = await h.invoke<ReconcileBody>({ action: "reconcile" });
  assertEquals([real.json.checked, real.json.divergent, real.json.enqueued], [3, 1, 1]);
  assertEquals(real.json.sync_lag.mentors, 2);
  assertEquals((await h.jobs(late.id)).map((j) => j.triggered_by_event), ["reconciliation"]);
  assertEquals((await h.alerts()).map((a) => a.kind), ["divergence"]);
  await h.drain();
  assertEquals(h.portalVisible(late.contactId), false);
  const after = await h.invoke<ReconcileBody>({ action: "reconcile", dry_run: true });
  assertEquals([after.json.divergent, after.json.sync_lag.mentors], [0, 1]);
  assertEquals(after.json.sync_lag.worst.map((w) => w.mentor_id), [never.id]);
});

suite.test("reconcile is resumable: limit 2 over 5 mentors takes 3 invocations, each read once", async (h) => {
  const o = await h.seedOrgs();
  const mentors = [];
  for (let i = 0; i < 5; i++) {
    mentors.push(await h.mentor({ org: o.hlf, portalVisible: i % 2 === 0 ? false : undefined }));
  }
  const divergent = mentors.filter((_, i) => i % 2 === 0).map((m) => m.id).sort();

  const run = async (dryRun: boolean) => {
    const pages: ReconcileBody[] = [];
    let cursor: string | null = null;
    do {
      const r: { status: number; text: string; json: ReconcileBody } = await h.invoke<
        ReconcileBody
      >({ action: "reconcile", dry_run: dryRun, limit: 2, ...(cursor ? { cursor } : {}) });
      assertEquals(r.status, 200, r.text);
      pages.push(r.json);
      cursor = r.json.next_cursor;
      assert(pages.length <= 5, "the cursor moves forward");
    } while (cursor);
    return pages;
  };

  const dry = await run(true);
  assertEquals(dry.map((p) => p.checked), [2, 2, 1]);
  assertEquals(dry.reduce((n, p) => n + p.divergent, 0), 3);
  assertEquals(dry.reduce((n, p) => n + p.enqueued, 0), 0);
  assertEquals(await h.jobs(), []);
  const reads = h.mock.requests.filter((r) => r.kind === "api" && r.method === "GET");
  for (const m of mentors) {
    const hits = reads.filter((r) => decodeURIComponent(r.url).toLowerCase().includes(m.contactId));
    assertEquals(hits.length, 1, `contact ${m.contactId} read exactly once`);
  }

  const real = await run(false);
  assertEquals(real.map((p) => p.checked), [2, 2, 1]);
  assertEquals(real.reduce((n, p) => n + p.enqueued, 0), 3);
  assertEquals((await h.jobs()).map((j) => j.mentor_id).sort(), divergent);
  await h.drain();
  for (const m of mentors) assertEquals(h.portalVisible(m.contactId), true);
  const again = await run(true);
  assertEquals(again.reduce((n, p) => n + p.divergent, 0), 0, "converged");
});

suite.test("expiry_check: expired mentors move to expired_cert and leave the portal", async (h) => {
  const o = await h.seedOrgs();
  const lapsed = await h.mentor({ org: o.hlf, certDays: -1, portalVisible: true });
  const soon = await h.mentor({ org: o.hlf, certDays: 10 });
  const r = await h.invoke({ action: "expiry_check" });
  assertEquals(r.status, 200, r.text);
  assertEquals(r.json.credentials_ok, true);
  assertEquals(r.json.transitioned, 1);
  assertEquals(r.json.reminders, 1);
  assertEquals(await h.mentorStatus(lapsed.id), "expired_cert");
  assertEquals(await h.mentorStatus(soon.id), "active");
  const [job] = await h.jobs(lapsed.id);
  assertEquals([job.status, job.operation, job.triggered_by_event], [
    "done",
    "remove",
    "expiry_check",
  ]);
  assertEquals(h.portalVisible(lapsed.contactId), false);
  assertEquals(h.portalVisible(soon.contactId), true);
  const reminders = await h.sql`select mentor_id, threshold_day from public.cert_expiry_reminders`;
  assertEquals(reminders.map((x) => [x.mentor_id, x.threshold_day]), [[soon.id, 14]]);
  const second = await h.invoke({ action: "expiry_check" });
  assertEquals([second.json.transitioned, second.json.reminders], [0, 0], "idempotent");
  assertEquals(h.mock.counters().whoAmIRequests, 2, "a credential check per run");
});

suite.test("redrive: a dead letter is re-queued once and then syncs", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf });
  h.mock.setContactScenario(m.contactId, { kind: "404", times: 1 });
  await h.setStatus(m.id, "paused");
  assertEquals((await h.processQueue()).dead, 1);
  const [dl] = await h.deadLetters(m.id);
  assertEquals(dl.error_code, "NOT_FOUND");
  const r = await h.invoke({ action: "redrive", dead_letter_id: dl.id });
  assertEquals(r.status, 200, r.text);
  const pending = (await h.jobs(m.id)).filter((j) => j.status === "pending");
  assertEquals(pending.map((j) => j.id), [r.json.job_id]);
  assertEquals(await h.processQueue(), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  assertEquals(h.portalVisible(m.contactId), false);
  assert((await h.deadLetters(m.id))[0].redriven_at !== null);
  assert((await h.failures(m.id))[0].resolved_at !== null, "failure resolved");
  const twice = await h.invoke<{ error: { code: string } }>({
    action: "redrive",
    dead_letter_id: dl.id,
  });
  assertEquals([twice.status, twice.json.error.code], [400, "BAD_REQUEST"]);
  const unknown = await h.invoke<{ error: { code: string } }>({
    action: "redrive",
    dead_letter_id: 999_999,
  });
  assertEquals([unknown.status, unknown.json.error.code], [404, "NOT_FOUND"]);
});

suite.test("429 with Retry-After: retried after the wait, every job still syncs", async (h) => {
  const o = await h.seedOrgs();
  const a = await h.mentor({ org: o.hlf });
  const b = await h.mentor({ org: o.hlf });
  h.mock.setScenario({ kind: "429", retryAfterSeconds: 1, times: 1 });
  await h.setStatus(a.id, "paused");
  await h.setStatus(b.id, "paused");
  assertEquals(await h.processQueue(), { processed: 2, synced: 2, retrying: 0, dead: 0 });
  const statuses = h.patches().map((p) => p.status);
  assertEquals(statuses.filter((s) => s === 429).length, 1);
  assertEquals(statuses.filter((s) => s === 204).length, 2);
  const throttled = (await h.audit()).filter((x) => x.http_status === 429);
  assertEquals(throttled.map((x) => x.error_code), ["THROTTLED"]);
  assertEquals(h.portalVisible(a.contactId), false);
  assertEquals(h.portalVisible(b.contactId), false);
});

suite.test("health: 200 with working credentials", async (h) => {
  const r = await h.invoke({ action: "health" });
  assertEquals([r.status, r.json], [200, { ok: true }]);
  assertEquals(h.mock.counters().whoAmIRequests, 1);
  assertEquals(await h.alerts(), []);
});

suite.finish();
