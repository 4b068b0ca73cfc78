// The queue processor: claims due jobs, runs them through the wasm core with bounded concurrency,
// applies each decision through sync_complete, and stays inside the invocation's wall budget.
// Dataverse's Retry-After is for everyone: when one job is throttled, the whole batch waits.
import type { DynamicsClient, JobOutcome, JobReport, QueuePolicy } from "./core.ts";
import { claimJobs, completeJob, type Job, type Sql } from "./db.ts";
import { describe, log } from "./log.ts";
import { throttledUntil } from "./throttle.ts";

export interface ProcessorDeps {
  sql: Sql;
  client: DynamicsClient;
  policy: QueuePolicy;
  leaseSeconds: number;
  concurrency: number;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  /** When Dataverse's last Retry-After ends (default: the isolate's throttle.ts). */
  throttledUntil?: () => number;
  /**
   * Called for every applied outcome, with the id of the alert it raised (null when none or
   * deduplicated): the actions deliver that alert to ALERT_WEBHOOK_URL. Must not throw.
   */
  onOutcome?: (job: Job, report: JobReport, alertId: number | null) => void | Promise<void>;
}

export interface ProcessSummary {
  processed: number;
  synced: number;
  retrying: number;
  dead: number;
  skipped: number;
  authFailures: number;
  /** Jobs whose lease another worker took over before we completed them. */
  stale: number;
  /** True when the run stopped with due jobs possibly left (budget, max, auth failure). */
  more: boolean;
}

/** Time kept in reserve at the end of the budget for completing in-flight jobs. */
const RESERVE_MS = 5_000;

export async function processQueue(
  deps: ProcessorDeps,
  opts: { maxJobs: number; deadlineMs: number },
): Promise<ProcessSummary> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms) => new Promise<void>((r) => setTimeout(r, ms)));
  const summary: ProcessSummary = {
    processed: 0,
    synced: 0,
    retrying: 0,
    dead: 0,
    skipped: 0,
    authFailures: 0,
    stale: 0,
    more: false,
  };
  let pauseUntil = 0;
  let stop = false;
  // A Retry-After told to any request of this isolate (even one still retrying inside its job)
  // pauses every job that has not started yet, not only those after the throttled job ends.
  const throttled = deps.throttledUntil ?? throttledUntil;
  const pausedFor = () => Math.max(pauseUntil, throttled()) - now();

  while (!stop && summary.processed < opts.maxJobs) {
    // No batch is claimed during a pause: its leases would run while it waits.
    const pause = pausedFor();
    if (pause > 0 && now() + pause + RESERVE_MS < opts.deadlineMs) await sleep(pause);
    if (now() + Math.max(0, pausedFor()) + RESERVE_MS >= opts.deadlineMs) {
      summary.more = true;
      break;
    }
    const want = Math.min(deps.concurrency * 2, opts.maxJobs - summary.processed);
    const jobs = await claimJobs(deps.sql, want, deps.leaseSeconds);
    if (jobs.length === 0) break;

    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        const wait = pausedFor();
        if (wait > 0) await sleep(Math.min(wait, Math.max(0, opts.deadlineMs - now())));
        const report = await runJob(deps, job, opts.deadlineMs - RESERVE_MS);
        if (report.retryAfterMs) pauseUntil = Math.max(pauseUntil, now() + report.retryAfterMs);
        const { applied, alertId } = await completeJob(
          deps.sql,
          job,
          report.outcome,
          report.attempts,
        );
        summary.processed++;
        if (!applied) {
          summary.stale++;
          continue;
        }
        count(summary, report.outcome);
        if (report.outcome.kind === "auth_failure") stop = true;
        logOutcome(job, report);
        await deps.onOutcome?.(job, report, alertId);
      }
    };
    await Promise.all(Array.from({ length: Math.min(deps.concurrency, jobs.length) }, worker));
    if (stop) summary.more = true;
  }
  return summary;
}

/** One job through the core; a thrown error (a bug, never a Dynamics failure) becomes a retry. */
async function runJob(deps: ProcessorDeps, job: Job, deadlineMs: number): Promise<JobReport> {
  try {
    return await deps.client.syncJob(job, deps.policy, { deadlineMs });
  } catch (e) {
    log("error", "job_crashed", { jobId: job.jobId, mentorId: job.mentorId, error: describe(e) });
    const outcome: JobOutcome = {
      kind: "retry",
      retryAtMs: Date.now() + deps.policy.baseMs,
      errorCode: "INTERNAL",
      message: describe(e),
    };
    return { outcome, visible: null, retryAfterMs: null, attempts: [] };
  }
}

function count(s: ProcessSummary, outcome: JobOutcome): void {
  switch (outcome.kind) {
    case "synced":
      s.synced++;
      break;
    case "retry":
      s.retrying++;
      break;
    case "dead_letter":
      s.dead++;
      break;
    case "skipped":
      s.skipped++;
      break;
    case "auth_failure":
      s.authFailures++;
      s.retrying++;
      break;
  }
}

function logOutcome(job: Job, report: JobReport): void {
  const o = report.outcome;
  const level = o.kind === "synced" || o.kind === "skipped" ? "info" : "warn";
  log(level, "job_" + o.kind, {
    jobId: job.jobId,
    mentorId: job.mentorId,
    trigger: job.triggeredByEvent,
    visible: report.visible,
    attempts: report.attempts.length,
    errorCode: o.errorCode,
    message: o.message ?? o.reason,
  });
}
