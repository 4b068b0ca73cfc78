// Chaos: the function and its dependencies broken on purpose. Every test ends with the same
// two claims (chaos_lib.ts assertNothingLost): zero lost jobs (every job done, or dead with a
// dead letter and an alert) and zero wrong final portal states (the mock portal and the mapping
// equal the desired visibility computed from the database, for every mentor).
//
// Bounded for scripts/test.sh: small numbers, short leases, millisecond backoffs. No assertion
// is about wall-clock duration; time only appears as a lower bound (a Retry-After respected).
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite, type FunctionProcess, Harness, waitFor } from "../e2e/harness.ts";
import type { RecordedRequest } from "../mock/dynamics_mock.ts";
import {
  assertNothingLost,
  drainUntilDone,
  Rng,
  seedMentors,
  sleep,
  startOwnCluster,
  unfinished,
  withDatabaseUrl,
} from "./chaos_lib.ts";
import { formatReport, runSoak } from "./soak.ts";

// CI replays one fixed seed (a red run must be reproducible); a developer's run explores a new one.
const SEED = Number(
  Deno.env.get("CHAOS_SEED") ??
    (Deno.env.get("CI") === "true" ? 20261123 : Math.floor(Math.random() * 2 ** 31)),
);
console.log(`chaos seed ${SEED} (CHAOS_SEED=${SEED} replays the random choices)`);

const BASE_ENV: Record<string, string> = {
  HLF_SYNC_LEASE_SECONDS: "2",
  HLF_SYNC_CONCURRENCY: "4",
  HLF_SYNC_MAX_ATTEMPTS: "8",
  HLF_QUEUE_RETRY_BASE_MS: "50",
  BACKOFF_MULTIPLIER_MS: "10",
  BACKOFF_JITTER_MS: "5",
};

const suite = e2eSuite({ functions: 0, credentials: "env", dbPrefix: "hlf_chaos" });

/** Spawns processes for one test and kills them afterwards (their output stays for the scan). */
async function withFunctions(
  h: Harness,
  n: number,
  env: Record<string, string>,
  fn: (fns: FunctionProcess[]) => Promise<void>,
): Promise<void> {
  const fns: FunctionProcess[] = [];
  try {
    for (let i = 0; i < n; i++) fns.push(await h.spawnFunction({ ...BASE_ENV, ...env }));
    await fn(fns);
  } finally {
    for (const f of fns) if (!f.exited) await h.killFunction(f);
  }
}

async function pauseAll(h: Harness, ids: string[]): Promise<void> {
  await h.sql`update public.peer_mentors set status = 'paused', updated_at = now()
               where id = any(${ids}::uuid[])`;
}

suite.test("kill -9 mid-batch, five times in a row: nothing lost, nothing wrong", async (h) => {
  const rng = new Rng(SEED);
  const o = await h.seedOrgs();
  const mentors = await seedMentors(h, o.hlf, o.hlfA, 24);
  h.mock.setLatencyMs(120);
  await pauseAll(h, mentors.map((m) => m.id));
  let kills = 0;
  for (let round = 0; round < 5; round++) {
    const victim = await h.spawnFunction(BASE_ENV);
    const from = h.mock.requests.length;
    let settled = false;
    const call = h.processQueue(undefined, victim).then(
      () => settled = true,
      () => settled = true,
    );
    await waitFor(
      "a PATCH of the victim in flight (or its batch over)",
      () =>
        settled ||
        h.mock.requests.slice(from).some((r) => r.method === "PATCH" && r.outcome === "pending"),
    );
    await sleep(rng.int(0, 250)); // before, between or after its PATCHes and sync_complete calls
    if (!victim.exited && !settled) kills++;
    await h.killFunction(victim);
    await call;
    // Intent keeps changing between the crashes: level-triggered jobs must end at the last one.
    for (let i = 0; i < 4; i++) {
      await h.setStatus(rng.pick(mentors).id, rng.pick(["active", "paused"] as const));
    }
  }
  assert(kills >= 3, `the loop killed processes mid-batch: ${kills}`);
  h.mock.setLatencyMs(0);
  await withFunctions(h, 1, {}, async ([survivor]) => {
    await drainUntilDone(h, () => [survivor], 60_000);
  });
  await assertNothingLost(h);
  const [{ recovered }] = await h.sql<{ recovered: number }[]>`
    select count(*)::int as recovered from public.sync_queue where attempts >= 2`;
  assert(recovered >= 1, "jobs of killed workers were picked up again after their lease");
  assertEquals(h.mock.maxConcurrentPerContact <= 1, true, "never two calls for one contact");
});

suite.test("PostgreSQL restarted mid-drain (own cluster): the pool recovers, leased jobs come back", async () => {
  const cluster = await startOwnCluster();
  let h: Harness | undefined;
  try {
    h = await withDatabaseUrl(
      cluster.url,
      () => Harness.start({ functions: 0, credentials: "env", dbPrefix: "hlf_chaos_pg" }),
    );
    const o = await h.seedOrgs();
    const mentors = await seedMentors(h, o.hlf, o.hlfA, 30);
    const fn = await h.spawnFunction(BASE_ENV);
    h.mock.setLatencyMs(150);
    await pauseAll(h, mentors.map((m) => m.id));
    const first = h.processQueue(undefined, fn).then((s) => s, (e) => e as Error);
    await waitFor("some jobs synced and PATCHes in flight", async () => {
      const [{ n }] = await h!.sql<{ n: number }[]>`
        select count(*)::int as n from public.sync_queue where status = 'done'`;
      return n >= 4 && h!.patches().some((p) => p.outcome === "pending");
    });
    await cluster.restart();
    await first; // failed (500) or partial: either way nothing may be lost
    h.mock.setLatencyMs(0);
    // The same process, the same pool: it must recover by itself.
    const { calls } = await drainUntilDone(h, () => [fn], 60_000);
    assert(calls >= 1, "the same process drained after the restart");
    assert(!fn.exited, "the function survived the restart");
    const after = await h.invoke({ action: "status", mentor_ids: [mentors[0].id] }, { fn });
    assertEquals(after.status, 200, after.text);
    await assertNothingLost(h);
    const [{ back }] = await h.sql<{ back: number }[]>`
      select count(*)::int as back from public.sync_queue where attempts >= 2`;
    assert(back >= 1, "jobs leased when the database went down were claimed again");
    for (const m of mentors) {
      const synced = (await h.audit(m.id)).filter((a) => a.event === "synced");
      assertEquals(synced.length, 1, "each job completed exactly once");
    }
    const findings = await h.secretFindings();
    assertEquals(findings, []);
  } finally {
    await h?.close();
    await cluster.stop();
  }
});

suite.test("Dataverse outage (always 503) then recovery: drains, failures resolve, one alert per mentor", async (h) => {
  const o = await h.seedOrgs();
  const mentors = await seedMentors(h, o.hlf, o.hlfA, 10);
  await withFunctions(h, 1, {}, async ([fn]) => {
    h.mock.setScenario("always-503");
    await pauseAll(h, mentors.map((m) => m.id));
    // Several invocations during the outage: every job fails 3 in-request attempts each time.
    await waitFor(
      "three queue-level attempts during the outage",
      async () => {
        await h.processQueue(undefined, fn);
        const [{ a }] = await h.sql<{ a: number }[]>`
        select min(attempts)::int as a from public.sync_queue where status = 'pending'`;
        return a >= 3;
      },
      30_000,
      50,
    );
    const during = await h.failures();
    assertEquals(during.length, mentors.length, "one failure row per mentor, not per attempt");
    assert(during.every((f) => f.resolved_at === null && f.error_code === "SERVER_ERROR"));
    assertEquals((await h.alerts("sync_pending")).length, mentors.length, "alert deduplicated");
    assertEquals(await h.deadLetters(), []);
    for (const m of mentors) assertEquals(h.portalVisible(m.contactId), true, "still listed");
    const failed503 = h.patches().filter((p) => p.status === 503).length;
    assert(failed503 >= 3 * 3 * mentors.length, `attempts were made: ${failed503}`);

    h.mock.setScenario("always-success");
    await drainUntilDone(h, () => [fn], 30_000);
  });
  await assertNothingLost(h);
  const failures = await h.failures();
  assertEquals(failures.length, mentors.length);
  assert(failures.every((f) => f.resolved_at !== null), "every failure resolved by the sync");
  const alerts = await h.alerts();
  assertEquals(alerts.map((a) => a.kind), mentors.map(() => "sync_pending"), "no other alerts");
  assertEquals(new Set(alerts.map((a) => a.mentor_id)).size, mentors.length, "once per mentor");
  assert(alerts.every((a) => a.acknowledged_at !== null), "cleared by the successful sync");
  for (const m of mentors) {
    assertEquals(h.patches(m.contactId).filter((p) => p.status === 204).length, 1);
  }
});

/** Requests the mock received in [from, to) (arrival time). */
function sentBetween(reqs: readonly RecordedRequest[], from: number, to: number): number {
  return reqs.filter((r) => r.kind === "api" && r.time > from && r.time < to).length;
}

suite.test("429 storm with Retry-After: honoured by the whole batch, requests bounded", async (h) => {
  const RA_S = 1;
  const C = 4;
  const o = await h.seedOrgs();
  const mentors = await seedMentors(h, o.hlf, o.hlfA, 16);
  await withFunctions(
    h,
    1,
    { HLF_SYNC_CONCURRENCY: String(C), HLF_SYNC_LEASE_SECONDS: "30" },
    async ([fn]) => {
      // Phase 1: a storm — every API request answered 429 Retry-After: 1 — for a while.
      await pauseAll(h, mentors.map((m) => m.id));
      h.mock.setScenario({ kind: "429", retryAfterSeconds: RA_S });
      const t0 = Date.now();
      const run = h.processQueue(undefined, fn);
      await waitFor(
        "the storm lasted a while",
        () => h.patches().filter((p) => p.status === 429).length >= 20,
        30_000,
      );
      h.mock.setScenario("always-success");
      const t1 = Date.now();
      await run;
      const storm = h.mock.requests.filter((r) => r.kind === "api" && r.time >= t0 && r.time <= t1);
      // Bound: each of the C slots sends at most one request per Retry-After interval.
      const bound = C * (Math.ceil((t1 - t0) / (RA_S * 1000)) + 1);
      assert(storm.length <= bound, `requests during the storm ${storm.length} > bound ${bound}`);
      // After every 429, the other slots send at most one request each within its Retry-After.
      for (const r of storm.filter((x) => x.status === 429)) {
        const answered = r.time + (r.durationMs ?? 0);
        const n = sentBetween(storm, answered + 20, answered + RA_S * 1000 - 50);
        assert(n <= C - 1, `${n} requests within Retry-After of a 429`);
      }
      await drainUntilDone(h, () => [fn], 30_000);
      await assertNothingLost(h);

      // Phase 2: a single 429 while the other slots are busy succeeding: the pause is global,
      // so no new job starts until the Retry-After has passed.
      await h.reset();
      const o2 = await h.seedOrgs();
      const more = await seedMentors(h, o2.hlf, o2.hlfA, 24);
      h.mock.setLatencyMs(30);
      h.mock.setScenario({ kind: "429", retryAfterSeconds: 2, times: 1 });
      await pauseAll(h, more.map((m) => m.id));
      await drainUntilDone(h, () => [fn], 30_000);
      const [throttled] = h.patches().filter((p) => p.status === 429);
      assert(throttled, "the 429 happened");
      const answered = throttled.time + (throttled.durationMs ?? 0);
      const within = sentBetween(h.mock.requests, answered + 5, answered + 2_000 - 50);
      assert(
        within <= C - 1,
        `${within} requests were sent within the Retry-After of another job's 429 (at most the ${
          C - 1
        } already-started jobs may)`,
      );
      await assertNothingLost(h);
    },
  );
});

suite.test("token endpoint down while the cached token is valid: syncs continue", async (h) => {
  const LIFETIME_S = 14; // refresh from 7 s on (half the lifetime), usable until ~12.6 s
  h.mock.setTokenLifetimeSeconds(LIFETIME_S);
  const o = await h.seedOrgs();
  const mentors = await seedMentors(h, o.hlf, o.hlfA, 6);
  await withFunctions(h, 1, {}, async ([fn]) => {
    await h.setStatus(mentors[0].id, "paused");
    await h.processQueue(undefined, fn);
    const [issued] = h.tokenRequests();
    assert(issued, "a token was fetched");
    const token = h.patches()[0].headers["authorization"];
    h.mock.setScenario("token-down");
    // Into the refresh window: the cache wants a new token but the old one is still valid.
    await sleep(Math.max(0, issued.time + (LIFETIME_S / 2) * 1000 + 300 - Date.now()));
    await pauseAll(h, mentors.slice(1).map((m) => m.id));
    const s = await h.processQueue(undefined, fn);
    assertEquals([s.synced, s.retrying, s.dead], [5, 0, 0], JSON.stringify(s));
    const refreshes = h.tokenRequests().slice(1);
    assert(refreshes.length >= 1, "the early refresh was tried");
    assert(refreshes.every((r) => r.status === 503), "and failed at the token endpoint");
    assert(
      h.patches().every((p) => p.headers["authorization"] === token),
      "every PATCH used the cached token",
    );
  });
  h.mock.setTokenLifetimeSeconds(3599);
  await assertNothingLost(h);
  assertEquals(await h.alerts(), [], "no auth alert: the credentials were never rejected");
});

suite.test("three processors competing under faults: each job effective once", async (h) => {
  const rng = new Rng(SEED + 1);
  const o = await h.seedOrgs();
  const mentors = await seedMentors(h, o.hlf, o.hlfA, 36);
  h.mock.setLatencyMs(15);
  for (const m of mentors.slice(0, 6)) {
    h.mock.setContactScenario(
      m.contactId,
      rng.pick(
        ["fail-twice-then-succeed", {
          kind: "slow",
          delayMs: 200,
          times: 1,
        }, { kind: "reset", times: 1 }] as const,
      ),
    );
  }
  await withFunctions(h, 3, { HLF_SYNC_LEASE_SECONDS: "10" }, async (fns) => {
    await pauseAll(h, mentors.map((m) => m.id));
    let stop = false;
    const loops = fns.map(async (fn) => {
      while (!stop) {
        const s = await h.processQueue(3, fn);
        if (s.processed === 0) await sleep(20);
      }
    });
    for (let i = 0; i < 30; i++) {
      await h.setStatus(rng.pick(mentors).id, rng.pick(["active", "paused"] as const));
      await sleep(rng.int(0, 30));
    }
    await waitFor("drained by the three", async () => await unfinished(h.sql) === 0, 30_000, 50);
    stop = true;
    await Promise.all(loops);
  });
  await assertNothingLost(h);
  assert(h.mock.maxConcurrentPerContact <= 1, "never two calls for one contact at once");
  // Each job took effect once: one decision row per finished job, one sync per synced job.
  const decisions = await h.sql<{ job_id: number; n: number; synced: number }[]>`
    select q.id::int as job_id,
           count(a.*) filter (where a.event in ('synced', 'skipped', 'dead_lettered', 'superseded'))::int as n,
           count(a.*) filter (where a.event = 'synced')::int as synced
      from public.sync_queue q
      left join public.sync_audit_log a on a.job_id = q.id
     group by q.id`;
  for (const d of decisions) assertEquals(d.n, 1, `job ${d.job_id}: one final decision`);
  // And every effective PATCH (204) at the mock is one synced job of that mentor.
  for (const m of mentors) {
    const synced = (await h.audit(m.id)).filter((a) => a.event === "synced").length;
    assertEquals(h.patches(m.contactId).filter((p) => p.status === 204).length, synced);
  }
});

suite.test("bounded soak: 50 mentors, 300 random changes, random faults and kill -9", async (h) => {
  const report = await runSoak(h, {
    mentors: 50,
    changes: 300,
    seconds: 12,
    seed: SEED,
    processes: 3,
    kills: 2,
    convergeTimeoutMs: 60_000,
  });
  console.log(formatReport(report));
  assertEquals(report.problems, []);
  assertEquals(report.end.wrongPortal, []);
  assertEquals(report.accounting.problems, []);
});

suite.finish();
