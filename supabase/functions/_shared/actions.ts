// The actions of POST /functions/v1/hlf-dynamics-sync. Each takes the context, the caller and
// its validated input, and returns the JSON answer or throws an HttpError.
import type { Caller } from "./auth.ts";
import type { Context } from "./context.ts";
import * as db from "./db.ts";
import { HttpError } from "./http.ts";
import { describe, log } from "./log.ts";
import type { DynamicsClient } from "./core.ts";
import { type ProcessorDeps, processQueue, type ProcessSummary } from "./processor.ts";
import type { Action } from "./validate.ts";

/** Wall budget of one invocation is settings.wallBudgetMs; a forced sync gets this much. */
const SYNC_MENTOR_BUDGET_MS = 30_000;
/** run_expiry_check batch, and the time a page may take (no page starts with less left). */
const EXPIRY_PAGE_SIZE = 500;
const EXPIRY_PAGE_RESERVE_MS = 10_000;
/**
 * Database time one expiry_check invocation spends on run_expiry_check pages. Past it the answer
 * says `more: true` and the next run (the nightly SQL fallback half an hour later, or another
 * invocation) continues where this one stopped: the check is idempotent and resumes by itself.
 */
const EXPIRY_DB_BUDGET_MS = 1_200;
/** Reconcile: mentors per page (one id-chunked read), time kept for a page, mentors listed. */
const RECONCILE_PAGE_SIZE = 500;
const RECONCILE_PAGE_RESERVE_MS = 10_000;
const LAG_WORST_LISTED = 10;

export interface Answer {
  status: number;
  body: unknown;
}

const ok = (body: unknown): Answer => ({ status: 200, body });

export async function runAction(ctx: Context, caller: Caller, action: Action): Promise<Answer> {
  const serviceOnly = !["sync_mentor", "status"].includes(action.action);
  if (serviceOnly && caller.kind !== "service") {
    throw new HttpError("FORBIDDEN", `action ${action.action} is for the service role only`);
  }
  const deadlineMs = ctx.now() + ctx.settings.wallBudgetMs;
  switch (action.action) {
    case "webhook":
      return ok(publicSummary(await drain(ctx, 1_000, deadlineMs)));
    case "process_queue":
      return ok(publicSummary(await drain(ctx, action.maxJobs, deadlineMs)));
    case "sync_mentor":
      return await syncMentor(ctx, caller, action.mentorId);
    case "status":
      return ok({ mentors: await status(ctx, caller, action.mentorIds) });
    case "health":
      return await healthCheck(ctx);
    case "expiry_check":
      return await expiryCheck(ctx, deadlineMs);
    case "reconcile":
      return ok(await reconcile(ctx, action.dryRun, action.cursor, action.limit, deadlineMs));
    case "redrive":
      return ok({ job_id: await redrive(ctx, action.deadLetterId) });
  }
}

/** The processor's dependencies from the context; alerts the jobs raise go to the webhook. */
export function processorDeps(ctx: Context, client: DynamicsClient): ProcessorDeps {
  return {
    sql: ctx.sql,
    client,
    policy: ctx.policy,
    leaseSeconds: ctx.settings.leaseSeconds,
    concurrency: ctx.settings.concurrency,
    onOutcome: (_job, _report, alertId) => ctx.alerts.notify(alertId),
  };
}

async function drain(ctx: Context, maxJobs: number, deadlineMs: number): Promise<ProcessSummary> {
  const client = await ctx.client();
  return await processQueue(processorDeps(ctx, client), { maxJobs, deadlineMs });
}

/** Records an alert and delivers it when it is new (a deduplicated one returns null). */
async function raiseAlert(
  ctx: Context,
  kind: "auth_failure" | "divergence",
  message: string,
): Promise<void> {
  ctx.alerts.notify(await db.recordAlert(ctx.sql, kind, null, message));
}

function publicSummary(s: ProcessSummary) {
  return { processed: s.processed, synced: s.synced, retrying: s.retrying, dead: s.dead };
}

async function syncMentor(ctx: Context, caller: Caller, mentorId: string): Promise<Answer> {
  await requireMentorAccess(ctx, caller, mentorId);
  await db.enqueue(ctx.sql, mentorId, "manual_coordinator_action");
  const job = await claimOwnJob(ctx, mentorId);
  if (!job) {
    throw new HttpError(
      "DYNAMICS_UNAVAILABLE",
      "another worker is syncing this mentor right now; the queued job will follow",
    );
  }
  const client = await ctx.client();
  const report = await client.syncJob(job, ctx.policy, {
    deadlineMs: ctx.now() + SYNC_MENTOR_BUDGET_MS,
  });
  const { alertId } = await db.completeJob(ctx.sql, job, report.outcome, report.attempts);
  ctx.alerts.notify(alertId);
  const o = report.outcome;
  log(o.kind === "synced" ? "info" : "warn", "sync_mentor", {
    mentorId,
    outcome: o.kind,
    errorCode: o.errorCode,
  });
  if (o.kind === "synced" || o.kind === "skipped") {
    return ok({ mentor_id: mentorId, visible: report.visible, outcome: o.kind });
  }
  // A dead-lettered job is not retried: say so instead of promising a background retry.
  const message = o.kind === "dead_letter"
    ? "Dynamics sync failed and will not be retried automatically (dead-lettered, operators alerted) — mentor may still be visible on the portal"
    : "Dynamics sync pending — mentor may still be visible on the portal; it will be retried in the background";
  throw new HttpError(
    "DYNAMICS_SYNC_FAILED",
    message,
    { mentor_id: mentorId, outcome: o.kind, dynamics_error: o.errorCode ?? null },
  );
}

/** Claims the mentor's pending job, waiting briefly if another worker holds its lease. */
async function claimOwnJob(ctx: Context, mentorId: string): Promise<db.Job | undefined> {
  for (let i = 0; i < 10; i++) {
    const [job] = await db.claimJobs(ctx.sql, 1, ctx.settings.leaseSeconds, mentorId);
    if (job) return job;
    await new Promise((r) => setTimeout(r, 300));
  }
  return undefined;
}

async function requireMentorAccess(ctx: Context, caller: Caller, mentorId: string): Promise<void> {
  if (!await db.mentorExists(ctx.sql, mentorId)) {
    throw new HttpError("NOT_FOUND", "no such mentor");
  }
  if (
    caller.kind === "coordinator" &&
    !await db.coordinatorCanAccess(ctx.sql, caller.userId, mentorId)
  ) {
    throw new HttpError("FORBIDDEN", "the mentor is not in a chapter you coordinate");
  }
}

async function status(ctx: Context, caller: Caller, mentorIds: string[] | null) {
  const rows = await db.mentorStatus(
    ctx.sql,
    mentorIds,
    caller.kind === "coordinator" ? caller.userId : null,
  );
  return rows.map((r) => ({
    mentor_id: r.mentor_id,
    full_name: r.full_name,
    desired_visible: r.desired_visible,
    last_synced_visible: r.last_synced_visible,
    last_synced_at: r.last_synced_at,
    open_job: r.open_job_id === null
      ? null
      : { id: Number(r.open_job_id), status: r.open_job_status },
    open_failure: r.open_failure_id === null ? null : {
      id: Number(r.open_failure_id),
      error_code: r.open_failure_code,
      message: r.open_failure_message,
    },
  }));
}

async function healthCheck(ctx: Context): Promise<Answer> {
  const client = await ctx.client();
  const report = await client.health();
  if (report.ok) {
    await db.acknowledgeAlerts(ctx.sql, "auth_failure");
    return ok({ ok: true });
  }
  if (report.error?.auth || report.error?.code === "CONFIGURATION") {
    await raiseAlert(
      ctx,
      "auth_failure",
      `Dynamics credential check failed: ${report.error.message}`,
    );
    throw new HttpError("AUTH_FAILED", "Dynamics rejected the credentials; an alert was raised");
  }
  throw new HttpError("DYNAMICS_UNAVAILABLE", `Dynamics is not reachable (${report.error?.code})`);
}

/**
 * The nightly run: credential health first (an auth failure raises its alert right away and
 * stops the sync work, but the database-only parts still run), then run_expiry_check page by
 * page inside the wall budget, then a queue drain. Safe twice in a row or twice at once: the
 * transitions check the current status, reminders are ON CONFLICT DO NOTHING, the drain claims
 * with SKIP LOCKED and the auth alert is deduplicated.
 */
async function expiryCheck(ctx: Context, deadlineMs: number): Promise<Answer> {
  let health: "ok" | "auth_failed" | "unavailable" = "ok";
  try {
    await healthCheck(ctx);
  } catch (e) {
    health = e instanceof HttpError && e.code === "AUTH_FAILED" ? "auth_failed" : "unavailable";
    const detail = e instanceof HttpError ? { code: e.code, message: e.message } : {
      error: describe(e),
    };
    log("warn", "expiry_check_health_failed", { health, ...detail });
  }
  let transitioned = 0;
  let reminders = 0;
  let pages = 0;
  let more = true;
  let dbMs = 0;
  while (more && ctx.now() + EXPIRY_PAGE_RESERVE_MS < deadlineMs && dbMs < EXPIRY_DB_BUDGET_MS) {
    const started = Date.now();
    const page = await db.runExpiryCheck(ctx.sql, EXPIRY_PAGE_SIZE);
    dbMs += Date.now() - started;
    pages++;
    transitioned += page.transitioned;
    reminders += page.reminders;
    more = page.more;
  }
  const drained = health === "ok" ? publicSummary(await drain(ctx, 10_000, deadlineMs)) : null;
  return ok({
    credentials_ok: health === "ok",
    health,
    transitioned,
    reminders,
    pages,
    more,
    drained,
  });
}

export interface LagReport {
  /** Mentors whose last synced visibility differs from the desired one (never synced included). */
  mentors: number;
  /** The longest such lag, in seconds (null when none or every start is unknown). */
  max_lag_seconds: number | null;
  /** When the oldest of them started (ISO), null when none or unknown. */
  oldest_since: string | null;
  /** The longest lags, longest first. */
  worst: {
    mentor_id: string;
    desired_visible: boolean;
    last_synced_visible: boolean | null;
    since: string | null;
    lag_seconds: number | null;
  }[];
}

/**
 * Compares the desired visibility with what Dataverse shows, page by page from `cursor`, for at
 * most `limit` mentors and inside the wall budget; re-queues divergent mentors (not on a dry
 * run, which changes nothing) and reports the sync lag of the mentors it checked.
 * `next_cursor` is null when the roster is done, else the cursor of the next invocation.
 */
async function reconcile(
  ctx: Context,
  dryRun: boolean,
  cursor: string | null,
  limit: number,
  deadlineMs: number,
) {
  const client = await ctx.client();
  let checked = 0;
  let divergent = 0;
  let enqueued = 0;
  let after = cursor;
  let done = false;
  const lag: LagReport = { mentors: 0, max_lag_seconds: null, oldest_since: null, worst: [] };
  try {
    while (checked < limit && ctx.now() + RECONCILE_PAGE_RESERVE_MS < deadlineMs) {
      const page = await ctx.sql<
        { mentor_id: string; dynamics_contact_id: string; desired_visible: boolean }[]
      >`select mentor_id, dynamics_contact_id, desired_visible
          from public.sync_reconcile_page(${after}::uuid, ${
        Math.min(RECONCILE_PAGE_SIZE, limit - checked)
      }::int)`;
      if (page.length === 0) {
        done = true;
        break;
      }
      // The lag before this run re-queues anything (a new job would restart the clock).
      addLag(lag, await db.syncLag(ctx.sql, page.map((r) => r.mentor_id)));
      const report = await client.readVisibility(page.map((r) => r.dynamics_contact_id), {
        deadlineMs,
      });
      if (!report.ok) {
        throw new HttpError(
          "DYNAMICS_UNAVAILABLE",
          `reading the portal failed (${report.error?.code})`,
        );
      }
      const actual = new Map(
        (report.contacts ?? []).map((c) => [c.contactId.toLowerCase(), c.visible === true]),
      );
      for (const row of page) {
        checked++;
        if ((actual.get(row.dynamics_contact_id.toLowerCase()) ?? false) !== row.desired_visible) {
          divergent++;
          if (!dryRun) {
            await db.enqueue(ctx.sql, row.mentor_id, "reconciliation");
            enqueued++;
          }
        }
      }
      after = page[page.length - 1].mentor_id;
    }
  } finally {
    // Also when a later page failed: the mentors already re-queued deserve their alert.
    if (enqueued > 0) {
      await raiseAlert(
        ctx,
        "divergence",
        `reconciliation found ${divergent} mentor(s) whose portal listing differed; ${enqueued} re-queued`,
      );
    }
  }
  return {
    checked,
    divergent,
    enqueued,
    dry_run: dryRun,
    next_cursor: done ? null : after,
    sync_lag: lag,
  };
}

function addLag(lag: LagReport, rows: db.LagRow[]): void {
  for (const r of rows) {
    lag.mentors++;
    const seconds = r.lag_seconds === null ? null : Number(r.lag_seconds);
    const since = r.since ? r.since.toISOString() : null;
    if (seconds !== null && (lag.max_lag_seconds === null || seconds > lag.max_lag_seconds)) {
      lag.max_lag_seconds = seconds;
      lag.oldest_since = since;
    }
    lag.worst.push({
      mentor_id: r.mentor_id,
      desired_visible: r.desired_visible,
      last_synced_visible: r.last_synced_visible,
      since,
      lag_seconds: seconds,
    });
  }
  lag.worst.sort((a, b) => (b.lag_seconds ?? -1) - (a.lag_seconds ?? -1));
  lag.worst.length = Math.min(lag.worst.length, LAG_WORST_LISTED);
}

async function redrive(ctx: Context, deadLetterId: number): Promise<number> {
  try {
    return await db.redrive(ctx.sql, deadLetterId);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === "P0002") throw new HttpError("NOT_FOUND", "no such dead letter");
    if (code === "55000") {
      throw new HttpError("BAD_REQUEST", "this dead letter was already redriven");
    }
    throw e;
  }
}
