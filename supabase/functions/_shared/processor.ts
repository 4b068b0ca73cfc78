// The queue processor: claims due jobs, runs them through the wasm core with bounded concurrency,
// applies each decision through sync_complete(_many), and stays inside the invocation's wall budget.
// Dataverse's Retry-After is for everyone: when one job is throttled, every job waits (throttle.ts).
//
// Pipeline: `concurrency` workers take jobs from a small claim buffer, refilled in the background
// when it runs low (never more than `concurrency` claimed-but-unstarted jobs, so leases do not tick
// while jobs wait); a finished job's decision is handed to the completer, which applies everything
// finished meanwhile in one round trip, while the worker goes on with its next job.
import type { DynamicsClient, JobOutcome, JobReport, QueuePolicy } from "./core.ts";
import { claimJobs, completeJobs, type Job, type Sql } from "./db.ts";
import { describe, log } from "./log.ts";
import { gate as isolateGate, throttledUntil, type ThrottleGate, waitTurn } from "./throttle.ts";

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
  /** Probe and pacing of new Dataverse requests (default: the isolate's throttle.ts gate). */
  gate?: ThrottleGate;
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
  const gate = deps.gate ?? isolateGate;
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
  const concurrency = Math.max(1, deps.concurrency);
  let pauseUntil = 0;
  let stop = false;
  let failure: unknown = null;
  // A Retry-After told to any request of this isolate (even one still retrying inside its job)
  // pauses every job that has not started yet, not only those after the throttled job ends.
  const throttled = deps.throttledUntil ?? throttledUntil;
  const pausedFor = () => Math.max(pauseUntil, throttled(), gate.pausedUntil()) - now();
  const fail = (e: unknown) => {
    failure ??= e;
    stop = true;
  };

  // ---- the completer: everything finished meanwhile in one round trip ----
  type Done = { job: Job; report: JobReport };
  let finished: Done[] = [];
  let flushing: Promise<void> | null = null;
  const apply = async (batch: Done[]) => {
    const results = await completeJobs(
      deps.sql,
      batch.map((d) => ({ job: d.job, outcome: d.report.outcome, attempts: d.report.attempts })),
    );
    for (let i = 0; i < batch.length; i++) {
      const { job, report } = batch[i];
      const result = results[i];
      if ("error" in result) {
        fail(result.error);
        continue;
      }
      const { applied, alertId } = result;
      summary.processed++;
      if (!applied) {
        summary.stale++;
        continue;
      }
      count(summary, report.outcome);
      logOutcome(job, report);
      await deps.onOutcome?.(job, report, alertId);
    }
  };
  const flush = (): Promise<void> => {
    if (flushing) return flushing;
    if (finished.length === 0) return Promise.resolve();
    const p = (async () => {
      while (finished.length > 0) {
        const batch = finished;
        finished = [];
        try {
          await apply(batch);
        } catch (e) {
          fail(e);
        }
      }
    })();
    flushing = p;
    void p.finally(() => {
      if (flushing === p) flushing = null;
      if (finished.length > 0) void flush();
    });
    return p;
  };
  const complete = async (job: Job, report: JobReport) => {
    finished.push({ job, report });
    const f = flush();
    // Back-pressure: a slow database holds the workers instead of piling up finished jobs.
    if (finished.length >= concurrency * 2) await f;
  };

  // ---- the claim buffer ----
  const buffer: Job[] = [];
  let claimed = 0;
  let exhausted = false;
  let roundClaimed = 0;
  let claiming: Promise<void> | null = null;
  const claim = (wait: boolean): Promise<void> => {
    if (claiming) return claiming;
    claiming = (async () => {
      // No jobs are claimed during a pause: their leases would run while they wait.
      const pause = pausedFor();
      if (pause > 0) {
        if (!wait) return;
        if (now() + pause + RESERVE_MS < opts.deadlineMs) await sleep(pause);
      }
      if (now() + Math.max(0, pausedFor()) + RESERVE_MS >= opts.deadlineMs) {
        summary.more = true;
        stop = true;
        return;
      }
      const want = Math.min(concurrency - buffer.length, opts.maxJobs - claimed);
      if (want <= 0) {
        if (claimed >= opts.maxJobs) exhausted = true;
        return;
      }
      const jobs = await claimJobs(deps.sql, want, deps.leaseSeconds);
      claimed += jobs.length;
      roundClaimed += jobs.length;
      if (jobs.length === 0) exhausted = true;
      buffer.push(...jobs);
    })().catch(fail).finally(() => claiming = null);
    return claiming;
  };

  const worker = async () => {
    for (;;) {
      const job = buffer.shift();
      if (!job) {
        // Claimed jobs are always run (never left to a lease expiry); new ones only while going.
        if (stop || exhausted) {
          // A claim still running will fill the buffer: its jobs must not be left unstarted.
          if (!claiming) return;
          await claiming;
          continue;
        }
        await claim(true);
        continue;
      }
      if (!stop && !exhausted && buffer.length <= concurrency / 2) void claim(false);
      // The pause, then one probe after it, then the learned pace (throttle.ts).
      const wait = pausedFor();
      if (wait > 0) await sleep(Math.min(wait, Math.max(0, opts.deadlineMs - now())));
      const turn = await waitTurn(opts.deadlineMs - RESERVE_MS, now, sleep, gate);
      const report = await runJob(deps, job, opts.deadlineMs - RESERVE_MS);
      gate.release(turn);
      if (report.retryAfterMs) pauseUntil = Math.max(pauseUntil, now() + report.retryAfterMs);
      if (report.outcome.kind === "auth_failure") stop = true;
      await complete(job, report);
    }
  };

  while (!stop && claimed < opts.maxJobs) {
    // A round ends when a claim finds nothing; a job of a mentor whose other job was processing
    // may have become due meanwhile, so another round runs while the last one claimed anything.
    roundClaimed = 0;
    exhausted = false;
    await Promise.all(Array.from({ length: concurrency }, worker));
    while (flushing || finished.length > 0) await flush();
    if (roundClaimed === 0) break;
  }
  await claiming;
  while (flushing || finished.length > 0) await flush();
  if (failure !== null) throw failure;
  if (stop) summary.more = true;
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
