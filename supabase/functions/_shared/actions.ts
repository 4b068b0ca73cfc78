// The actions of POST /functions/v1/hlf-dynamics-sync. Each takes the context, the caller and
// its validated input, and returns the JSON answer or throws an HttpError.
import type { Caller } from "./auth.ts";
import type { Context } from "./context.ts";
import * as db from "./db.ts";
import { HttpError } from "./http.ts";
import { log } from "./log.ts";
import { processQueue, type ProcessSummary } from "./processor.ts";
import type { Action } from "./validate.ts";

/** Wall budget of one invocation is settings.wallBudgetMs; a forced sync gets this much. */
const SYNC_MENTOR_BUDGET_MS = 30_000;

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
      return await health(ctx);
    case "expiry_check":
      return await expiryCheck(ctx, deadlineMs);
    case "reconcile":
      return ok(await reconcile(ctx, action.dryRun, action.cursor, action.limit, deadlineMs));
    case "redrive":
      return ok({ job_id: await redrive(ctx, action.deadLetterId) });
  }
}

async function drain(ctx: Context, maxJobs: number, deadlineMs: number): Promise<ProcessSummary> {
  const client = await ctx.client();
  return await processQueue({
    sql: ctx.sql,
    client,
    policy: ctx.policy,
    leaseSeconds: ctx.settings.leaseSeconds,
    concurrency: ctx.settings.concurrency,
  }, { maxJobs, deadlineMs });
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
  await db.completeJob(ctx.sql, job, report.outcome, report.attempts);
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

async function health(ctx: Context): Promise<Answer> {
  const client = await ctx.client();
  const report = await client.health();
  if (report.ok) {
    await db.acknowledgeAlerts(ctx.sql, "auth_failure");
    return ok({ ok: true });
  }
  if (report.error?.auth || report.error?.code === "CONFIGURATION") {
    await db.recordAlert(
      ctx.sql,
      "auth_failure",
      null,
      `Dynamics credential check failed: ${report.error.message}`,
    );
    throw new HttpError("AUTH_FAILED", "Dynamics rejected the credentials; an alert was raised");
  }
  throw new HttpError("DYNAMICS_UNAVAILABLE", `Dynamics is not reachable (${report.error?.code})`);
}

async function expiryCheck(ctx: Context, deadlineMs: number): Promise<Answer> {
  let credentialsOk = true;
  try {
    await health(ctx);
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    credentialsOk = false;
    log("warn", "expiry_check_health_failed", { code: e.code, message: e.message });
  }
  let transitioned = 0;
  let reminders = 0;
  let more = true;
  while (more && ctx.now() + 10_000 < deadlineMs) {
    const page = await db.runExpiryCheck(ctx.sql, 500);
    transitioned += page.transitioned;
    reminders += page.reminders;
    more = page.more;
  }
  const drained = credentialsOk ? publicSummary(await drain(ctx, 10_000, deadlineMs)) : null;
  return ok({ credentials_ok: credentialsOk, transitioned, reminders, more, drained });
}

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
  while (checked < limit && ctx.now() + 10_000 < deadlineMs) {
    const page = await ctx.sql<
      { mentor_id: string; dynamics_contact_id: string; desired_visible: boolean }[]
    >`select mentor_id, dynamics_contact_id, desired_visible
        from public.sync_reconcile_page(${after}::uuid, ${Math.min(500, limit - checked)}::int)`;
    if (page.length === 0) {
      done = true;
      break;
    }
    const report = await client.readVisibility(page.map((r) => r.dynamics_contact_id), {
      deadlineMs,
    });
    if (!report.ok) {
      throw new HttpError(
        "DYNAMICS_UNAVAILABLE",
        `reading the portal failed (${report.error?.code})`,
      );
    }
    const actual = new Map((report.contacts ?? []).map((c) => [c.contactId, c.visible === true]));
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
  if (divergent > 0 && !dryRun) {
    await db.recordAlert(
      ctx.sql,
      "divergence",
      null,
      `reconciliation found ${divergent} mentor(s) whose portal listing differed; re-queued`,
    );
  }
  return { checked, divergent, enqueued, dry_run: dryRun, next_cursor: done ? null : after };
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
