// Database access through postgres.js: a small pool and one typed wrapper per RPC of
// supabase/migrations (see docs/database.md). No transaction is held open across a Dynamics call:
// every wrapper is one statement (or one short transaction).
import postgres from "postgres";
import type { AttemptRecord, ClaimedJob, JobOutcome } from "./core.ts";

export type Sql = postgres.Sql;

/**
 * True when `url` targets Supabase's transaction pooler (Supavisor/PgBouncer in transaction mode,
 * port 6543): a pooled connection may serve each statement from another server session, so
 * named prepared statements cannot be used there.
 */
export function isTransactionPooler(url: string): boolean {
  try {
    return new URL(url).port === "6543";
  } catch {
    return false;
  }
}

export function connect(url: string, max = 4): Sql {
  return postgres(url, {
    max,
    idle_timeout: 20,
    connect_timeout: 10,
    // Named prepared statements: one round trip per parameterised query instead of two
    // (Parse/Describe, then Bind/Execute). Not behind the transaction pooler (see above), where
    // they would fail; a direct or session-mode connection keeps them per session.
    prepare: !isTransactionPooler(url),
    onnotice: () => {},
    connection: { application_name: "hlf-dynamics-sync" },
  });
}

/** A claimed job: the queue row plus the facts the decision needs. */
export interface Job extends ClaimedJob {
  jobId: number;
  mentorId: string;
  operation: "remove" | "restore";
  triggeredByEvent: string;
  lastSyncedVisible: boolean | null;
}

interface ClaimRow {
  job_id: string | number;
  mentor_id: string;
  operation: "remove" | "restore";
  triggered_by_event: string;
  attempts: number;
  dynamics_contact_id: string | null;
  mentor_status: "active" | "paused" | "expired_cert";
  latest_cert_expires_at: Date | null;
  sync_enabled: boolean;
  last_synced_visible: boolean | null;
}

export async function claimJobs(
  sql: Sql,
  limit: number,
  leaseSeconds: number,
  mentorId: string | null = null,
): Promise<Job[]> {
  const rows = await sql<ClaimRow[]>`
    select * from public.sync_claim(${limit}::int, ${leaseSeconds}::int, ${mentorId}::uuid)`;
  return rows.map((r) => ({
    jobId: Number(r.job_id),
    mentorId: r.mentor_id,
    operation: r.operation,
    triggeredByEvent: r.triggered_by_event,
    attempts: r.attempts,
    dynamicsContactId: r.dynamics_contact_id,
    status: r.mentor_status,
    latestCertExpiresAtMs: r.latest_cert_expires_at ? r.latest_cert_expires_at.getTime() : null,
    syncEnabled: r.sync_enabled,
    lastSyncedVisible: r.last_synced_visible,
  }));
}

/**
 * Applies a decision atomically; `applied` is false when the lease was lost to another worker.
 * `alertId` is the alert the decision raised (null when none, or when it was deduplicated).
 */
export async function completeJob(
  sql: Sql,
  job: Job,
  outcome: JobOutcome,
  attempts: AttemptRecord[],
): Promise<{ applied: boolean; alertId: number | null }> {
  const a = completeArgs({ job, outcome, attempts });
  const [row] = await sql<{ result: CompleteRow }[]>`
    select public.sync_complete(
      ${a.job_id}::bigint, ${a.attempt}::int, ${a.outcome}::text,
      ${a.visible}::boolean, ${a.retry_at}::timestamptz,
      ${a.error_code}::text, ${a.message}::text, ${sql.json(a.audit)}::jsonb
    ) as result`;
  return completeResult(row?.result);
}

/** The per-job result of `completeJobs`: as `completeJob`, or the error that job raised. */
export type CompleteResult = { applied: boolean; alertId: number | null } | { error: unknown };

/**
 * Applies several decisions in one round trip (`sync_complete_many`: each one through
 * `sync_complete`, same fencing). Results come in the order of `items`. When the batch call
 * fails (an element raised, or a deadlock with another worker), every item is completed on its
 * own instead, so one bad decision never holds the others back.
 */
export async function completeJobs(
  sql: Sql,
  items: { job: Job; outcome: JobOutcome; attempts: AttemptRecord[] }[],
): Promise<CompleteResult[]> {
  if (items.length === 1) {
    const [it] = items;
    try {
      return [await completeJob(sql, it.job, it.outcome, it.attempts)];
    } catch (error) {
      return [{ error }];
    }
  }
  const payload = items.map(completeArgs);
  try {
    const [row] = await sql<{ results: CompleteRow[] }[]>`
      select public.sync_complete_many(${sql.json(payload)}::jsonb) as results`;
    const byId = new Map(row.results.map((r) => [Number(r.job_id), r]));
    return items.map(({ job }) => completeResult(byId.get(job.jobId)));
  } catch {
    const out: CompleteResult[] = [];
    for (const it of items) {
      try {
        out.push(await completeJob(sql, it.job, it.outcome, it.attempts));
      } catch (error) {
        out.push({ error });
      }
    }
    return out;
  }
}

type CompleteRow = {
  job_id?: number | string;
  applied?: boolean;
  alert_id?: number | string | null;
};

function completeResult(
  row: CompleteRow | undefined,
): { applied: boolean; alertId: number | null } {
  const alertId = row?.alert_id;
  return {
    applied: row !== undefined && row.applied !== false,
    alertId: alertId === null || alertId === undefined ? null : Number(alertId),
  };
}

/** The arguments of `sync_complete` for one decision (also one element of `sync_complete_many`). */
function completeArgs(
  { job, outcome, attempts }: { job: Job; outcome: JobOutcome; attempts: AttemptRecord[] },
) {
  return {
    job_id: job.jobId,
    attempt: job.attempts,
    outcome: outcome.kind,
    visible: outcome.visible ?? null,
    retry_at: outcome.retryAtMs !== undefined ? new Date(outcome.retryAtMs).toISOString() : null,
    error_code: outcome.errorCode ?? null,
    message: outcome.message ?? outcome.reason ?? null,
    audit: auditRows(attempts),
  };
}

function auditRows(attempts: AttemptRecord[]) {
  return attempts.map((a) => ({
    attempt: a.attempt,
    httpStatus: a.httpStatus,
    errorCode: a.errorCode,
    durationMs: a.durationMs,
    event: a.request === "token" ? "token_attempt" : "dynamics_attempt",
  }));
}

export async function enqueue(sql: Sql, mentorId: string, event: string): Promise<number> {
  const [row] = await sql<{ id: string }[]>`
    select public.sync_enqueue(${mentorId}::uuid, ${event}::text) as id`;
  return Number(row.id);
}

export async function mentorExists(sql: Sql, mentorId: string): Promise<boolean> {
  const rows = await sql`select 1 from public.peer_mentors where id = ${mentorId}::uuid`;
  return rows.length > 0;
}

export async function coordinatorCanAccess(
  sql: Sql,
  userId: string,
  mentorId: string,
): Promise<boolean> {
  const [row] = await sql<{ ok: boolean }[]>`
    select public.coordinator_can_access_mentor(${userId}::uuid, ${mentorId}::uuid) as ok`;
  return row?.ok === true;
}

export interface MentorStatusRow {
  mentor_id: string;
  full_name: string;
  desired_visible: boolean;
  last_synced_visible: boolean | null;
  last_synced_at: Date | null;
  open_job_id: string | null;
  open_job_status: string | null;
  open_failure_id: string | null;
  open_failure_code: string | null;
  open_failure_message: string | null;
}

/**
 * `sync_status` as the caller: the service sees everything; a coordinator's query runs as the
 * `authenticated` role with their claims, so the database applies chapter scope exactly as it
 * does for the app.
 */
export function mentorStatus(
  sql: Sql,
  mentorIds: string[] | null,
  userId: string | null,
): Promise<MentorStatusRow[]> {
  if (userId === null) {
    return sql<MentorStatusRow[]>`select * from public.sync_status(${mentorIds}::uuid[])`;
  }
  return sql.begin(async (tx) => {
    const claims = JSON.stringify({ sub: userId, role: "authenticated" });
    await tx`select set_config('request.jwt.claims', ${claims}, true)`;
    await tx`set local role authenticated`;
    return await tx<MentorStatusRow[]>`select * from public.sync_status(${mentorIds}::uuid[])`;
  }) as Promise<MentorStatusRow[]>;
}

export async function redrive(sql: Sql, deadLetterId: number): Promise<number> {
  const [row] = await sql<{ id: string }[]>`
    select public.sync_redrive(${deadLetterId}::bigint) as id`;
  return Number(row.id);
}

export async function recordAlert(
  sql: Sql,
  kind: "auth_failure" | "dead_letter" | "divergence" | "sync_pending",
  mentorId: string | null,
  message: string,
): Promise<number | null> {
  const [row] = await sql<{ id: string | null }[]>`
    select public.sync_record_alert(${kind}::text, ${mentorId}::uuid, ${message}::text) as id`;
  return row?.id == null ? null : Number(row.id);
}

export async function acknowledgeAlerts(sql: Sql, kind: string): Promise<number> {
  const [row] = await sql<
    { n: number }[]
  >`select public.sync_acknowledge_alerts(${kind}::text) as n`;
  return Number(row?.n ?? 0);
}

export async function runExpiryCheck(
  sql: Sql,
  batchSize: number,
): Promise<{ transitioned: number; reminders: number; more: boolean }> {
  const [row] = await sql<{ r: { transitioned: number; reminders: number; more: boolean } }[]>`
    select public.run_expiry_check(${batchSize}::int) as r`;
  return row.r;
}

export interface LagRow {
  mentor_id: string;
  desired_visible: boolean;
  last_synced_visible: boolean | null;
  since: Date | null;
  lag_seconds: string | number | null;
}

/** `sync_lag`: these mentors (null = all) whose last synced visibility differs from desired. */
export async function syncLag(sql: Sql, mentorIds: string[] | null): Promise<LagRow[]> {
  return [...await sql<LagRow[]>`select * from public.sync_lag(${mentorIds}::uuid[])`];
}
