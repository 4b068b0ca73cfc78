// Workers that die and workers that race: kill -9 of the function in the middle of a batch (its
// jobs are finished by another process once their lease ends), and three function processes
// draining one queue in parallel (each job effective once, never two calls for one contact at once).
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite, type Harness, type Mentor, waitFor } from "./harness.ts";

const LEASE_SECONDS = 2;
const suite = e2eSuite({
  credentials: "env",
  env: { HLF_SYNC_LEASE_SECONDS: String(LEASE_SECONDS), HLF_SYNC_CONCURRENCY: "4" },
});

async function pausedMentors(h: Harness, n: number): Promise<Mentor[]> {
  const o = await h.seedOrgs();
  const mentors: Mentor[] = [];
  for (let i = 0; i < n; i++) mentors.push(await h.mentor({ org: o.hlf }));
  for (const m of mentors) await h.setStatus(m.id, "paused");
  return mentors;
}

async function unfinished(h: Harness): Promise<number> {
  const [{ n }] = await h.sql<{ n: number }[]>`
    select count(*)::int as n from public.sync_queue where status in ('pending', 'processing')`;
  return n;
}

suite.test("kill -9 mid-batch: after the lease another process finishes every job", async (h) => {
  const mentors = await pausedMentors(h, 6);
  const victim = await h.spawnFunction();
  h.mock.setScenario({ kind: "slow", delayMs: 60_000 });
  const doomed = h.processQueue(undefined, victim).catch((e) => e);
  await waitFor(
    "PATCHes in flight at the mock",
    () => h.patches().filter((p) => p.outcome === "pending").length >= 4,
  );
  const claimed = (await h.jobs()).filter((j) => j.status === "processing");
  assert(claimed.length >= 4, `the victim holds leases: ${claimed.length}`);
  await h.killFunction(victim);
  assert((await doomed) instanceof Error, "the killed invocation never answered");
  h.mock.setScenario("always-success");

  // While the leases last, no other worker touches those jobs.
  const early = await h.processQueue();
  assertEquals(early.processed, 6 - claimed.length, "only unclaimed jobs are taken early");
  const stillLeased = (await h.jobs()).filter((j) => j.status === "processing");
  assertEquals(stillLeased.map((j) => j.id).sort(), claimed.map((j) => j.id).sort());

  // After the lease, the surviving process picks them up (polling, no fixed sleep).
  await waitFor(
    "all jobs finished after the lease",
    async () => {
      await h.processQueue();
      return await unfinished(h) === 0;
    },
    20_000,
    200,
  );

  for (const m of mentors) {
    const jobs = await h.jobs(m.id);
    assertEquals(jobs.map((j) => j.status), ["done"], `mentor ${m.id}`);
    assertEquals(h.portalVisible(m.contactId), false);
    assertEquals(await h.lastSyncedVisible(m.id), false);
    const events = (await h.audit(m.id)).map((a) => a.event);
    assertEquals(events.filter((e) => e === "synced").length, 1, "synced exactly once");
  }
  for (const j of claimed) {
    const [row] = (await h.jobs()).filter((x) => x.id === j.id);
    assertEquals(row.attempts, 2, "the crashed attempt counted, then one more");
  }
  assertEquals(await h.deadLetters(), []);
  assertEquals(await h.failures(), []);
  assertEquals(await h.alerts(), []);
});

suite.test("three processes in parallel: each job effective once, one call per contact at a time", async (h) => {
  const extra = [await h.spawnFunction(), await h.spawnFunction()];
  try {
    const fns = [h.functions[0], ...extra];
    h.mock.setLatencyMs(15);
    const mentors = await pausedMentors(h, 30);

    // Phase 1: thirty remove jobs, drained by three processes at once.
    let processed = 0;
    for (let round = 0; round < 30 && await unfinished(h) > 0; round++) {
      const answers = await Promise.all(fns.map((f) => h.processQueue(4, f)));
      processed += answers.reduce((n, a) => n + a.processed, 0);
    }
    assertEquals(await unfinished(h), 0);
    assertEquals(processed, 30, "every job processed exactly once");
    for (const m of mentors) {
      assertEquals(h.patches(m.contactId).map((p) => [p.status, p.visible]), [[204, false]]);
      assertEquals(await h.lastSyncedVisible(m.id), false);
    }
    const [{ done, attempts }] = await h.sql<{ done: number; attempts: number }[]>`
      select count(*) filter (where status = 'done')::int as done, max(attempts)::int as attempts
        from public.sync_queue`;
    assertEquals([done, attempts], [30, 1]);
    assertEquals(h.mock.maxConcurrentPerContact, 1);

    // Phase 2: status flips while the three drain; the portal ends at the final intent.
    const flipping = mentors.slice(0, 12);
    const drains = Promise.all(fns.map(async (f) => {
      for (let i = 0; i < 8; i++) await h.processQueue(3, f);
    }));
    for (const m of flipping) await h.setStatus(m.id, "active");
    for (const m of flipping.slice(0, 6)) await h.setStatus(m.id, "paused");
    await drains;
    await waitFor(
      "queue drained",
      async () => {
        await Promise.all(fns.map((f) => h.processQueue(50, f)));
        return await unfinished(h) === 0;
      },
      20_000,
      50,
    );
    for (const [i, m] of mentors.entries()) {
      const want = i >= 6 && i < 12; // reactivated and left active
      assertEquals(h.portalVisible(m.contactId), want, `portal of mentor ${i}`);
      assertEquals(await h.lastSyncedVisible(m.id), want, `mapping of mentor ${i}`);
    }
    assert(h.mock.maxConcurrentPerContact <= 1, "never two calls for one contact at once");
    assertEquals(await h.deadLetters(), []);
  } finally {
    for (const f of extra) await h.killFunction(f);
  }
});

suite.finish();
