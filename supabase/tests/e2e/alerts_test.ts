// Alerts leave the database: every new alert row is POSTed to ALERT_WEBHOOK_URL (a receiver
// started here), deduplicated alerts are not sent again, a receiver that is down never stops the
// sync. Also the credential-rotation runbook end to end (health alert → Vault update → health
// ok) and the nightly expiry_check run twice at once, with and without working credentials.
// Credentials come from Vault.
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite, type FunctionProcess, type Harness, randomSecret, waitFor } from "./harness.ts";
import { deadWebhookUrl, type ReceivedRequest, startWebhookReceiver } from "./webhook_receiver.ts";

const MAX_ATTEMPTS = 3;
const receiver = startWebhookReceiver();
const suite = e2eSuite({
  credentials: "vault",
  env: { ALERT_WEBHOOK_URL: receiver.url, HLF_SYNC_MAX_ATTEMPTS: String(MAX_ATTEMPTS) },
});

interface ErrorBody {
  error: { code: string; message: string };
}

type AlertRow = Awaited<ReturnType<Harness["alerts"]>>[number];

/** Where each function's output stood when the current test started. */
const marks = new Map<FunctionProcess, { out: number; err: number }>();

/** The function's log lines (JSON) with this event, logged since the current test started. */
function logEvents(fn: FunctionProcess, event: string): Record<string, unknown>[] {
  const m = marks.get(fn) ?? { out: 0, err: 0 };
  return (fn.stdout().slice(m.out) + "\n" + fn.stderr().slice(m.err)).split("\n")
    .filter((l) => l.includes(`"event":"${event}"`))
    .map((l) => JSON.parse(l));
}

function startTest(h: Harness): void {
  receiver.reset();
  for (const fn of h.functions) marks.set(fn, { out: fn.stdout().length, err: fn.stderr().length });
}

/**
 * Waits until every alert row was delivered (a 2xx at the receiver) and the function logged as
 * many finished deliveries, then returns the deliveries. A duplicate POST would show up as an
 * extra delivery.
 */
async function settledDeliveries(h: Harness, fn = h.functions[0]): Promise<ReceivedRequest[]> {
  const rows = await h.alerts();
  await waitFor(
    `${rows.length} alert(s) delivered`,
    () =>
      receiver.delivered().length >= rows.length &&
      logEvents(fn, "alert_delivered").length >= rows.length,
  );
  await new Promise((r) => setTimeout(r, 150)); // room for a duplicate to arrive, if any
  return receiver.delivered();
}

function assertPayload(req: ReceivedRequest, row: AlertRow & { created_at?: Date }): void {
  assertEquals(req.method, "POST");
  assertEquals(req.headers["content-type"], "application/json");
  assert(req.json !== undefined, `JSON body: ${req.body}`);
  assertEquals(Object.keys(req.json).sort(), [
    "alert_id",
    "created_at",
    "kind",
    "mentor_id",
    "message",
  ]);
  assertEquals(req.json.alert_id, row.id);
  assertEquals(req.json.kind, row.kind);
  assertEquals(req.json.mentor_id, row.mentor_id);
  assertEquals(req.json.message, row.message);
  assert(!Number.isNaN(Date.parse(String(req.json.created_at))), "created_at is a timestamp");
}

suite.test("a dead letter and a pending sync are POSTed once each; the repeats are not", async (h) => {
  startTest(h);
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf, portalVisible: true });
  h.mock.setContactScenario(m.contactId, "always-503");
  await h.setStatus(m.id, "paused");
  for (let i = 1; i < MAX_ATTEMPTS; i++) {
    assertEquals(await h.processQueue(1), { processed: 1, synced: 0, retrying: 1, dead: 0 });
  }
  assertEquals(await h.processQueue(1), { processed: 1, synced: 0, retrying: 0, dead: 1 });

  const rows = await h.alerts();
  assertEquals(rows.map((a) => a.kind), ["sync_pending", "dead_letter"]);
  const got = await settledDeliveries(h);
  assertEquals(got.length, 2, "one POST per alert row: the 2nd and 3rd retries were deduplicated");
  for (const row of rows) {
    const req = got.find((r) => r.json?.alert_id === row.id);
    assert(req, `alert ${row.id} (${row.kind}) delivered`);
    assertPayload(req, row);
    assertEquals(req.json!.mentor_id, m.id);
    assertEquals(new URL(receiver.url).pathname, req.path);
  }
  assert(String(got.find((r) => r.json?.kind === "dead_letter")!.json!.message).includes(m.id));
  for (const r of receiver.requests) {
    for (const secret of [h.clientSecret, h.serviceRoleKey, h.jwtSecret]) {
      assert(!r.body.includes(secret), "no secret in a webhook payload");
      assert(!JSON.stringify(r.headers).includes(secret), "no secret in webhook headers");
    }
    assert(!/bearer/i.test(r.body) && r.headers["authorization"] === undefined);
  }
});

suite.test("credential rotation: health alert (retried to the receiver) → Vault update → health ok", async (h) => {
  startTest(h);
  const rotated = randomSecret("e2e-rotated-secret");
  const again = randomSecret("e2e-rotated-again");
  try {
    // HLF IT rotates the secret in Azure AD; Vault still has the old one.
    h.mock.setClientSecret(rotated);
    receiver.failNext(2, 503); // the receiver hiccups: the alert gets there on the third try
    const bad = await h.invoke<ErrorBody>({ action: "health" });
    assertEquals([bad.status, bad.json.error.code], [503, "AUTH_FAILED"]);
    const [alert] = await h.alerts("auth_failure");
    assertEquals([alert.mentor_id, alert.acknowledged_at], [null, null]);
    await waitFor("the auth alert delivered", () => receiver.delivered().length === 1);
    assertEquals(receiver.requests.map((r) => r.status), [503, 503, 200]);
    assertEquals(new Set(receiver.requests.map((r) => r.json?.alert_id)), new Set([alert.id]));
    assertPayload(receiver.delivered()[0], alert);
    const delivered = await waitFor(
      "the delivery logged",
      () => logEvents(h.functions[0], "alert_delivered").find((e) => e.alertId === alert.id),
    );
    assertEquals(delivered.attempts, 3);

    const still = await h.invoke<ErrorBody>({ action: "health" });
    assertEquals(still.status, 503);
    assertEquals((await h.alerts("auth_failure")).length, 1, "deduplicated while open");

    // The operator updates the secret in Vault: no redeploy, health picks it up.
    await h.writeVaultCredentials(rotated);
    const good = await h.invoke({ action: "health" });
    assertEquals([good.status, good.json], [200, { ok: true }]);
    assert((await h.alerts("auth_failure"))[0].acknowledged_at !== null, "alert acknowledged");
    assertEquals(receiver.delivered().length, 1, "a deduplicated alert is not POSTed again");

    // The next rotation is a new incident: a new alert, a new POST.
    h.mock.setClientSecret(again);
    assertEquals((await h.invoke({ action: "health" })).status, 503);
    const rows = await h.alerts("auth_failure");
    assertEquals(rows.length, 2);
    await waitFor("the second incident delivered", () => receiver.delivered().length === 2);
    assertEquals(receiver.delivered()[1].json?.alert_id, rows[1].id);
    assertEquals(await h.secretFindings([rotated, again]), []);
    for (const r of receiver.requests) {
      assert(!r.body.includes(rotated) && !r.body.includes(again), "no secret in a payload");
    }
  } finally {
    h.mock.setClientSecret(h.clientSecret);
    await h.writeVaultCredentials(h.clientSecret);
  }
});

suite.test("receiver down: the sync completes, the failed delivery is logged without the URL", async (h) => {
  startTest(h);
  const down = deadWebhookUrl();
  const fn = await h.spawnFunction({ ALERT_WEBHOOK_URL: down });
  try {
    const o = await h.seedOrgs();
    const gone = await h.mentor({ org: o.hlf, portalVisible: true });
    const fine = await h.mentor({ org: o.hlf, portalVisible: true });
    h.mock.setContactScenario(gone.contactId, "404");
    await h.setStatus(gone.id, "paused");
    await h.setStatus(fine.id, "paused");
    const s = await h.processQueue(undefined, fn);
    assertEquals(s, { processed: 2, synced: 1, retrying: 0, dead: 1 });
    assertEquals(h.portalVisible(fine.contactId), false);
    const [alert] = await h.alerts("dead_letter");
    const failed = await waitFor(
      "the failed delivery logged",
      () => logEvents(fn, "alert_delivery_failed").find((e) => e.alertId === alert.id),
    );
    assertEquals(failed.attempts, 3, "retried briefly");
    assertEquals(failed.kind, "dead_letter");
    assertEquals(failed.target, new URL(down).origin);
    const path = new URL(down).pathname;
    assert(
      !fn.stdout().includes(path) && !fn.stderr().includes(path),
      "the URL path is not logged",
    );
    assertEquals(receiver.requests, [], "nothing went to the other receiver");
    // The function is still serving.
    assertEquals((await h.invoke({ action: "health" }, { fn })).status, 200);
  } finally {
    await h.killFunction(fn);
  }
});

suite.test("reconcile: a real run's divergence alert is POSTed; a dry run raises none", async (h) => {
  startTest(h);
  const o = await h.seedOrgs();
  await h.mentor({ org: o.hlf, status: "paused", portalVisible: true });
  const dry = await h.invoke({ action: "reconcile", dry_run: true });
  assertEquals([dry.json.divergent, dry.json.enqueued], [1, 0]);
  assertEquals(await h.alerts(), []);
  const real = await h.invoke({ action: "reconcile" });
  assertEquals([real.json.divergent, real.json.enqueued], [1, 1]);
  const [row] = await h.alerts();
  assertEquals(row.kind, "divergence");
  const got = await settledDeliveries(h);
  assertEquals(got.length, 1);
  assertPayload(got[0], row);
});

/** A second function process for the concurrency tests (started once). */
let second: FunctionProcess | undefined;
async function secondFunction(h: Harness): Promise<FunctionProcess> {
  if (!second || second.exited) second = await h.spawnFunction();
  return second;
}

suite.test("expiry_check twice at once on two processes: each change, reminder and PATCH once", async (h) => {
  const other = await secondFunction(h);
  startTest(h);
  const o = await h.seedOrgs();
  const lapsed = [];
  for (let i = 0; i < 6; i++) {
    lapsed.push(await h.mentor({ org: o.hlf, certDays: -1, portalVisible: true }));
  }
  const soon = [];
  for (const days of [3, 10, 10, 20]) soon.push(await h.mentor({ org: o.hlf, certDays: days }));

  const runs = await Promise.all([
    h.invoke({ action: "expiry_check" }),
    h.invoke({ action: "expiry_check" }, { fn: other }),
  ]);
  for (const r of runs) {
    assertEquals(r.status, 200, r.text);
    assertEquals([r.json.health, r.json.credentials_ok, r.json.more], ["ok", true, false]);
  }
  const sum = (k: string) => runs.reduce((n, r) => n + Number(r.json[k]), 0);
  assertEquals(sum("transitioned"), 6, "each mentor moved once");
  assertEquals(sum("reminders"), 4, "each reminder recorded once");
  const reminders = await h.sql<{ mentor_id: string; threshold_day: number }[]>`
    select mentor_id, threshold_day from public.cert_expiry_reminders order by threshold_day`;
  assertEquals(reminders.map((r) => r.threshold_day), [7, 14, 14, 30]);
  for (const m of lapsed) {
    assertEquals(await h.mentorStatus(m.id), "expired_cert");
    const jobs = await h.jobs(m.id);
    assertEquals(jobs.map((j) => [j.status, j.triggered_by_event]), [["done", "expiry_check"]]);
    assertEquals(h.patches(m.contactId).map((p) => [p.status, p.visible]), [[204, false]]);
    assertEquals(h.portalVisible(m.contactId), false);
  }
  for (const m of soon) assertEquals(h.patches(m.contactId), []);
  assertEquals(h.mock.counters().whoAmIRequests, 2, "each run checked the credentials");

  // Twice in a row: nothing new.
  const next = await h.invoke({ action: "expiry_check" }, { fn: other });
  assertEquals([next.json.transitioned, next.json.reminders], [0, 0]);
  assertEquals(next.json.drained, { processed: 0, synced: 0, retrying: 0, dead: 0 });
  assertEquals(h.patches().length, lapsed.length);
  assertEquals(await h.alerts(), []);
  assertEquals(receiver.requests, []);
});

suite.test("expiry_check twice at once with rotated credentials: one alert, one POST, DB work done", async (h) => {
  const other = await secondFunction(h);
  startTest(h);
  const o = await h.seedOrgs();
  const lapsed = [
    await h.mentor({ org: o.hlf, certDays: -1, portalVisible: true }),
    await h.mentor({ org: o.hlf, certDays: -1, portalVisible: true }),
  ];
  const soon = await h.mentor({ org: o.hlf, certDays: 5 });
  const rotated = randomSecret("e2e-rotated-secret");
  try {
    h.mock.setClientSecret(rotated);
    const runs = await Promise.all([
      h.invoke({ action: "expiry_check" }),
      h.invoke({ action: "expiry_check" }, { fn: other }),
    ]);
    for (const r of runs) {
      assertEquals(r.status, 200, r.text);
      assertEquals([r.json.health, r.json.credentials_ok, r.json.drained], [
        "auth_failed",
        false,
        null,
      ]);
    }
    assertEquals(runs.reduce((n, r) => n + Number(r.json.transitioned), 0), 2);
    assertEquals(runs.reduce((n, r) => n + Number(r.json.reminders), 0), 1);
    for (const m of lapsed) {
      assertEquals(await h.mentorStatus(m.id), "expired_cert", "the database part still ran");
      assertEquals((await h.jobs(m.id)).map((j) => j.status), ["pending"], "sync work stopped");
    }
    assertEquals(h.patches(), []);
    assertEquals(h.mock.counters().whoAmIRequests, 0, "no token, no WhoAmI");
    const alerts = await h.alerts();
    assertEquals(alerts.map((a) => a.kind), ["auth_failure"], "one alert for both runs");
    const [req] = await waitFor("the alert delivered", () => receiver.delivered());
    assertPayload(req, alerts[0]);
    await new Promise((r) => setTimeout(r, 150));
    assertEquals(receiver.requests.length, 1, "POSTed once");

    // Credentials fixed in Vault: the next nightly run syncs what the failed one left.
    await h.writeVaultCredentials(rotated);
    const fixed = await h.invoke({ action: "expiry_check" });
    assertEquals([fixed.json.health, fixed.json.transitioned], ["ok", 0]);
    assertEquals(fixed.json.drained, { processed: 2, synced: 2, retrying: 0, dead: 0 });
    for (const m of lapsed) assertEquals(h.portalVisible(m.contactId), false);
    assert((await h.alerts("auth_failure"))[0].acknowledged_at !== null);
    assertEquals(h.portalVisible(soon.contactId), true);
    assertEquals(await h.secretFindings([rotated]), []);
  } finally {
    h.mock.setClientSecret(h.clientSecret);
    await h.writeVaultCredentials(h.clientSecret);
  }
});

suite.finish();

Deno.test({
  name: "close the webhook receiver",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => receiver.close(),
});
