// Helpers of the benchmark (bench/bench.ts): process statistics from /proc, bulk seeding in SQL,
// percentiles, pgbench, pg_stat_statements. Loopback only; nothing here talks to a real service.
import type { Sql } from "../supabase/tests/e2e/harness.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---- /proc -------------------------------------------------------------------------------------

const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat times are in these ticks.

/** The deno process behind a spawned pid (`setsid deno …` execs, but follow a child if not). */
export function denoPid(pid: number): number {
  for (let p = pid, depth = 0; depth < 3; depth++) {
    let comm = "";
    try {
      comm = Deno.readTextFileSync(`/proc/${p}/comm`).trim();
    } catch {
      return pid;
    }
    if (comm === "deno") return p;
    const children = Deno.readTextFileSync(`/proc/${p}/task/${p}/children`).trim().split(/\s+/);
    if (!children[0]) return pid;
    p = Number(children[0]);
  }
  return pid;
}

/** utime + stime of a process (all its threads), in ms. */
export function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  // The command name may contain spaces: fields start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime is field 14, stime field 15.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
}

/** A line of /proc/<pid>/status in MB (VmHWM = peak RSS, VmRSS = current). */
export function procStatusMb(pid: number, key: "VmHWM" | "VmRSS"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
  if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

// ---- statistics --------------------------------------------------------------------------------

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[rank];
}

export const median = (v: number[]) => percentile(v, 50);
export const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
export const round = (x: number, digits = 2) => Number(x.toFixed(digits));

// ---- deterministic ids ---------------------------------------------------------------------------

export const ORG_ID = "a0000000-0000-4000-8000-000000000001";
export const CHAPTER_ID = "c0000000-0000-4000-8000-000000000001";
const hex12 = (n: number) => n.toString(16).padStart(12, "0");
/** Mentor n (1-based); ids sort in n order. */
export const mentorId = (n: number) => `b0000000-0000-4000-8000-${hex12(n)}`;
/** Dynamics contact of mentor n (same shape as the mock's demoContactId). */
export const contactId = (n: number) => `00000000-0000-4000-8000-${hex12(n)}`;
const SQL_MENTOR_ID = `('b0000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid`;
const SQL_CONTACT_ID = `('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid`;

export interface SeedOptions {
  /** Mentors 1..n. */
  n: number;
  /** SQL expression of `i` for peer_mentors.status (default 'active'). */
  status?: string;
  /** SQL expression of `i` for the certification's expires_at (default now() + 365 days). */
  certExpiresAt?: string;
  /** SQL expression of `i` for mentor_dynamics_contacts.last_synced_visible (default true). */
  lastSyncedVisible?: string;
  /** Also fill public.bench_ids (n int → mentor id) for pgbench scripts. */
  benchIds?: boolean;
}

/**
 * HLF (sync on), one chapter, and n mapped mentors with one certification each, inserted in bulk
 * with triggers off (session_replication_role = replica), so seeding writes no job and no audit.
 */
export async function seedMentors(sql: Sql, o: SeedOptions): Promise<void> {
  const status = o.status ?? "'active'";
  const cert = o.certExpiresAt ?? "now() + interval '365 days'";
  const synced = o.lastSyncedVisible ?? "true";
  await sql.begin(async (tx) => {
    await tx.unsafe(`set local session_replication_role = replica`);
    await tx.unsafe(`
      insert into public.organizations (id, code, name) values ('${ORG_ID}', 'HLF', 'HLF')
        on conflict do nothing;
      insert into public.org_sync_settings (organization_id, dynamics_sync_enabled)
        values ('${ORG_ID}', true) on conflict do nothing;
      insert into public.chapters (id, organization_id, name)
        values ('${CHAPTER_ID}', '${ORG_ID}', 'HLF Oslo') on conflict do nothing;
      insert into public.peer_mentors (id, organization_id, full_name, status)
        select ${SQL_MENTOR_ID}, '${ORG_ID}', 'Mentor ' || i, ${status}
          from generate_series(1, ${o.n}) i;
      insert into public.peer_mentor_chapters (mentor_id, chapter_id)
        select ${SQL_MENTOR_ID}, '${CHAPTER_ID}' from generate_series(1, ${o.n}) i;
      insert into public.certifications (mentor_id, expires_at)
        select ${SQL_MENTOR_ID}, ${cert} from generate_series(1, ${o.n}) i;
      insert into public.mentor_dynamics_contacts
          (mentor_id, dynamics_contact_id, last_synced_visible, last_synced_at)
        select ${SQL_MENTOR_ID}, ${SQL_CONTACT_ID}, ${synced}, now()
          from generate_series(1, ${o.n}) i;`);
    if (o.benchIds) {
      await tx.unsafe(`
        create table if not exists public.bench_ids (n int primary key, id uuid not null);
        insert into public.bench_ids select i, ${SQL_MENTOR_ID} from generate_series(1, ${o.n}) i;`);
    }
  });
  await sql.unsafe(`analyze`);
}

/** A pending job (operation `op`) for mentors from..to, written directly (no trigger). */
export async function seedJobs(
  sql: Sql,
  from: number,
  to: number,
  op: "remove" | "restore",
): Promise<void> {
  await sql.unsafe(`
    insert into public.sync_queue (mentor_id, operation, triggered_by_event, next_attempt_at)
    select ${SQL_MENTOR_ID}, '${op}', 'status_change', now() - interval '1 second'
      from generate_series(${from}, ${to}) i;
    analyze public.sync_queue;`);
}

export async function queueCounts(sql: Sql): Promise<Record<string, number>> {
  const rows = await sql<{ status: string; n: number }[]>`
    select status, count(*)::int as n from public.sync_queue group by status`;
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

// ---- pg_stat_statements ------------------------------------------------------------------------

export interface StatementTime {
  query: string;
  calls: number;
  ms: number;
}

/** Top-level statements of this database since the last reset, slowest total first. */
export async function statementTimes(sql: Sql): Promise<StatementTime[]> {
  const rows = await sql<{ query: string; calls: number; ms: number }[]>`
    select regexp_replace(query, '\\s+', ' ', 'g') as query, calls::int,
           total_exec_time::float8 as ms
      from pg_stat_statements
     where dbid = (select oid from pg_database where datname = current_database())
       and toplevel and query not ilike '%pg_stat_statements%'
     order by total_exec_time desc`;
  return rows.map((r) => ({ query: r.query.slice(0, 160), calls: r.calls, ms: round(r.ms, 1) }));
}

export async function resetStatements(sql: Sql): Promise<void> {
  await sql`select pg_stat_statements_reset()`;
}

// ---- pgbench -----------------------------------------------------------------------------------

export const PGBENCH = "/usr/lib/postgresql/15/bin/pgbench";

export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
}

/** Runs pgbench with a script file on the database `dbUrl`; returns tps and mean latency. */
export async function pgbench(
  dbUrl: string,
  script: string,
  o: {
    clients: number;
    seconds: number;
    vars?: Record<string, string | number>;
    env?: Record<string, string>;
  },
): Promise<PgbenchResult> {
  const args = ["-n", "-f", script, "-c", String(o.clients), "-j", String(Math.min(o.clients, 2))];
  args.push("-T", String(o.seconds));
  for (const [k, v] of Object.entries(o.vars ?? {})) args.push("-D", `${k}=${v}`);
  args.push(dbUrl);
  const out = await new Deno.Command(PGBENCH, {
    args,
    env: o.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`pgbench failed: ${new TextDecoder().decode(out.stderr)}\n${text}`);
  }
  const num = (re: RegExp) => {
    const m = re.exec(text);
    if (!m) throw new Error(`pgbench output without ${re}:\n${text}`);
    return Number(m[1]);
  };
  return {
    tps: num(/^tps = ([\d.]+)/m),
    latencyMs: num(/^latency average = ([\d.]+) ms/m),
    transactions: num(/^number of transactions actually processed: (\d+)/m),
  };
}

/** EXPLAIN (ANALYZE, BUFFERS) of a statement, as text (inside a rolled-back transaction). */
export async function explainAnalyze(sql: Sql, statement: string): Promise<string> {
  const rollback = new Error("rollback");
  let plan = "";
  try {
    await sql.begin(async (tx) => {
      const rows = await tx.unsafe<{ "QUERY PLAN": string }[]>(
        `explain (analyze, buffers, costs off) ${statement}`,
      );
      plan = rows.map((r) => r["QUERY PLAN"]).join("\n");
      throw rollback;
    });
  } catch (e) {
    if (e !== rollback) plan = `EXPLAIN failed: ${e instanceof Error ? e.message : e}`;
  }
  return plan;
}

/**
 * The plans of every statement a call runs, nested ones inside PL/pgSQL functions included
 * (auto_explain with analyze, sent to this client as LOG notices); the call is rolled back.
 */
export async function explainNested(dbUrl: string, statement: string): Promise<string> {
  const { default: postgres } = await import("postgres");
  const plans: string[] = [];
  const one = postgres(dbUrl, {
    max: 1,
    onnotice: (n) => {
      if (typeof n.message === "string" && n.message.includes("Query Text")) plans.push(n.message);
    },
  });
  const rollback = new Error("rollback");
  try {
    await one.begin(async (tx) => {
      await tx.unsafe(`load 'auto_explain'`);
      await tx.unsafe(`set local auto_explain.log_min_duration = 0`);
      await tx.unsafe(`set local auto_explain.log_analyze = on`);
      await tx.unsafe(`set local auto_explain.log_buffers = on`);
      await tx.unsafe(`set local auto_explain.log_timing = on`);
      await tx.unsafe(`set local auto_explain.log_nested_statements = on`);
      await tx.unsafe(`set local client_min_messages = log`);
      await tx.unsafe(statement);
      throw rollback;
    });
  } catch (e) {
    if (e !== rollback) plans.push(`failed: ${e instanceof Error ? e.message : e}`);
  } finally {
    await one.end({ timeout: 5 });
  }
  return plans.join("\n\n");
}
