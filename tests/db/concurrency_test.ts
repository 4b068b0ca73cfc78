// Concurrency of the queue and the expiry checker with real, separate database sessions.
//
// Needs DATABASE_URL pointing at a migrated database (scripts/migrate.sh) that this test may use
// alone: claims are global, so other due jobs in the same database would be claimed too.
// scripts/lib/suites-db.sh (suite db-concurrency) creates such a database for each run.
//
//   DATABASE_URL=postgres://... deno test --allow-env --allow-net=127.0.0.1 tests/db/
import postgres from "postgres";

const SESSIONS = 8;
const url = Deno.env.get("DATABASE_URL");
if (!url) throw new Error("DATABASE_URL is not set");

type Sql = ReturnType<typeof postgres>;

function assert(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

function assertEquals<T>(actual: T, expected: T, msg: string): void {
  if (actual !== expected) {
    throw new Error(`assertion failed: ${msg}: expected ${expected}, got ${actual}`);
  }
}

function connect(): Sql {
  return postgres(url!, { max: 1, onnotice: () => {} });
}

async function withSessions<T>(n: number, fn: (sessions: Sql[]) => Promise<T>): Promise<T> {
  const sessions = Array.from({ length: n }, connect);
  try {
    // Open every connection before the race starts, so the sessions really overlap.
    await Promise.all(sessions.map((s) => s`select 1`));
    return await fn(sessions);
  } finally {
    await Promise.all(sessions.map((s) => s.end({ timeout: 5 })));
  }
}

/** Creates a sync-enabled organisation with `count` active mentors; returns their ids. */
async function seedOrg(
  sql: Sql,
  label: string,
  count: number,
): Promise<{ org: string; mentors: string[] }> {
  const code = `${label}_${crypto.randomUUID().slice(0, 8)}`;
  const [{ id: org }] = await sql<{ id: string }[]>`
    insert into public.organizations (code) values (${code}) returning id`;
  await sql`insert into public.org_sync_settings (organization_id, dynamics_sync_enabled)
            values (${org}, true)`;
  const rows = await sql<{ id: string }[]>`
    insert into public.peer_mentors (organization_id, full_name, status)
    select ${org}, ${label} || ' ' || g, 'active' from generate_series(1, ${count}) g
    returning id`;
  return { org, mentors: rows.map((r) => r.id).sort() };
}

async function dropOrg(sql: Sql, org: string, mentors: string[]): Promise<void> {
  await sql`delete from public.sync_audit_log where mentor_id = any(${mentors}::uuid[])`;
  await sql`delete from public.sync_alerts where mentor_id = any(${mentors}::uuid[])`;
  await sql`delete from public.organizations where id = ${org}`;
}

Deno.test("concurrent claims get disjoint jobs and never two jobs of one mentor", async () => {
  const admin = connect();
  const { org, mentors } = await seedOrg(admin, "CLAIM", 60);
  try {
    // A valid certification per mentor: the outbox trigger enqueues one restore job each.
    await admin`insert into public.certifications (mentor_id, expires_at)
                select unnest(${mentors}::uuid[]), now() + interval '1 year'`;
    // For 15 mentors: their job is processing with an expired lease (a crashed worker) AND a
    // newer pending job exists. Only one of the two may be handed out.
    const crashed = mentors.slice(0, 15);
    await admin`update public.sync_queue
                   set status = 'processing', attempts = 1, locked_until = now() - interval '1 second'
                 where mentor_id = any(${crashed}::uuid[]) and status = 'pending'`;
    await admin`update public.peer_mentors set status = 'paused' where id = any(${crashed}::uuid[])`;
    const [{ n: queued }] = await admin<{ n: number }[]>`
      select count(*)::int as n from public.sync_queue where mentor_id = any(${mentors}::uuid[])`;
    assertEquals(queued, 75, "60 jobs plus 15 pending beside the crashed ones");

    const claimed = await withSessions(
      SESSIONS,
      (sessions) =>
        Promise.all(sessions.map(async (s) => {
          const mine: { job_id: string; mentor_id: string }[] = [];
          for (;;) {
            const rows = await s<{ job_id: string; mentor_id: string }[]>`
            select job_id::text, mentor_id from public.sync_claim(3, 120)`;
            if (rows.length === 0) return mine;
            mine.push(...rows);
          }
        })),
    );

    const all = claimed.flat().filter((r) => mentors.includes(r.mentor_id));
    const jobIds = new Set(all.map((r) => r.job_id));
    assertEquals(jobIds.size, all.length, "no job was handed to two sessions");
    const perMentor = new Set(all.map((r) => r.mentor_id));
    assertEquals(perMentor.size, all.length, "no mentor had two jobs handed out");
    assertEquals(all.length, 60, "every mentor's claimable job was claimed exactly once");
    assert(claimed.filter((c) => c.length > 0).length > 1, "the work was spread over sessions");

    const [{ n: stillPending }] = await admin<{ n: number }[]>`
      select count(*)::int as n from public.sync_queue
       where mentor_id = any(${crashed}::uuid[]) and status = 'pending'`;
    assertEquals(
      stillPending,
      15,
      "the pending jobs beside re-claimed crashed jobs wait their turn",
    );
  } finally {
    await dropOrg(admin, org, mentors);
    await admin.end();
  }
});

Deno.test("concurrent sync_enqueue calls coalesce into one pending job per mentor", async () => {
  const admin = connect();
  const { org, mentors } = await seedOrg(admin, "ENQ", 10);
  try {
    const ids = await withSessions(SESSIONS, (sessions) =>
      Promise.all(sessions.map(async (s) => {
        const got: { mentor: string; job: string }[] = [];
        for (const m of mentors) {
          const [{ job }] = await s<{ job: string }[]>`
            select public.sync_enqueue(${m}, 'reconciliation')::text as job`;
          got.push({ mentor: m, job });
        }
        return got;
      })));
    const rows = await admin<{ mentor_id: string; n: number }[]>`
      select mentor_id, count(*)::int as n from public.sync_queue
       where mentor_id = any(${mentors}::uuid[]) and status = 'pending'
       group by mentor_id`;
    assertEquals(rows.length, 10, "every mentor has a pending job");
    assert(rows.every((r) => r.n === 1), "and only one");
    for (const m of mentors) {
      const jobs = new Set(ids.flat().filter((r) => r.mentor === m).map((r) => r.job));
      assertEquals(jobs.size, 1, "all sessions got the same job id for one mentor");
    }
  } finally {
    await dropOrg(admin, org, mentors);
    await admin.end();
  }
});

Deno.test("two concurrent expiry runs transition and remind each mentor exactly once", async () => {
  const admin = connect();
  const { org, mentors } = await seedOrg(admin, "EXPIRY", 60);
  const expired = mentors.slice(0, 30);
  const soon = mentors.slice(30);
  try {
    await admin`insert into public.certifications (mentor_id, expires_at)
                select unnest(${expired}::uuid[]), now() - interval '1 day'`;
    await admin`insert into public.certifications (mentor_id, expires_at)
                select unnest(${soon}::uuid[]), now() + interval '5 days'`;
    await admin`delete from public.sync_queue where mentor_id = any(${mentors}::uuid[])`;

    const results = await withSessions(2, (sessions) =>
      Promise.all(sessions.map(async (s) => {
        let transitioned = 0;
        let reminders = 0;
        for (let page = 0; page < 100; page++) {
          const [{ r }] = await s<
            { r: { transitioned: number; reminders: number; more: boolean } }[]
          >`
            select public.run_expiry_check(7) as r`;
          transitioned += r.transitioned;
          reminders += r.reminders;
          if (!r.more) break;
        }
        return { transitioned, reminders };
      })));

    const total = results.reduce((a, r) => a + r.transitioned, 0);
    const reminded = results.reduce((a, r) => a + r.reminders, 0);
    assertEquals(total, 30, "the two runs together transitioned each expired mentor once");
    assertEquals(reminded, 30, "the two runs together reported each reminder once");

    const [facts] = await admin<
      {
        expired: number;
        reminders: number;
        distinct_reminders: number;
        jobs: number;
        audits: number;
      }[]
    >`
      select
        (select count(*)::int from public.peer_mentors
          where id = any(${expired}::uuid[]) and status = 'expired_cert') as expired,
        (select count(*)::int from public.cert_expiry_reminders
          where mentor_id = any(${soon}::uuid[])) as reminders,
        (select count(distinct mentor_id)::int from public.cert_expiry_reminders
          where mentor_id = any(${soon}::uuid[]) and threshold_day = 7) as distinct_reminders,
        (select count(*)::int from public.sync_queue
          where mentor_id = any(${expired}::uuid[]) and operation = 'remove'
            and triggered_by_event = 'expiry_check') as jobs,
        (select count(*)::int from public.sync_audit_log
          where mentor_id = any(${expired}::uuid[]) and event = 'auto_expired') as audits`;
    assertEquals(facts.expired, 30, "all 30 expired mentors are expired_cert");
    assertEquals(facts.reminders, 30, "exactly one reminder row per mentor");
    assertEquals(facts.distinct_reminders, 30, "each at the 7-day threshold");
    assertEquals(facts.jobs, 30, "exactly one remove job per transitioned mentor");
    assertEquals(facts.audits, 30, "exactly one auto_expired audit row per transitioned mentor");
  } finally {
    await dropOrg(admin, org, mentors);
    await admin.end();
  }
});
