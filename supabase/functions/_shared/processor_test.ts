// The processor's pipeline against a fake database and client: every claimed job runs once and
// is completed once, no more than `concurrency` jobs run at a time, the claim buffer never holds
// more than `concurrency` jobs, and an auth failure stops new claims.
import type { DynamicsClient, JobReport } from "./core.ts";
import type { Job, Sql } from "./db.ts";
import { processQueue } from "./processor.ts";
import { ThrottleGate } from "./throttle.ts";

function assertEquals(actual: unknown, expected: unknown, msg = "") {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    throw new Error(`${msg} expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

function fakeQueue(n: number) {
  const pending = Array.from({ length: n }, (_, i) => i + 1);
  const completed: number[] = [];
  const state = { claimedUnstarted: 0, maxUnstarted: 0, claims: 0, completeCalls: 0 };
  const sql = ((strings: TemplateStringsArray, ...values: unknown[]) => {
    const text = strings.join("?");
    if (text.includes("sync_claim")) {
      state.claims++;
      const rows = pending.splice(0, Number(values[0])).map((id) => ({
        job_id: String(id),
        mentor_id: `m${id}`,
        operation: "remove",
        triggered_by_event: "status_change",
        attempts: 1,
        dynamics_contact_id: "c",
        mentor_status: "paused",
        latest_cert_expires_at: null,
        sync_enabled: true,
        last_synced_visible: null,
      }));
      state.claimedUnstarted += rows.length;
      state.maxUnstarted = Math.max(state.maxUnstarted, state.claimedUnstarted);
      return Promise.resolve(rows);
    }
    state.completeCalls++;
    const later = <T>(v: T) => new Promise<T>((r) => setTimeout(() => r(v), 3));
    if (text.includes("sync_complete_many")) {
      const items = values[0] as { job_id: number }[];
      completed.push(...items.map((i) => i.job_id));
      return later([{
        results: items.map((i) => ({ job_id: i.job_id, applied: true, alert_id: null })),
      }]);
    }
    completed.push(Number(values[0]));
    return later([{ result: { applied: true, alert_id: null } }]);
  }) as unknown as Sql & { json: (v: unknown) => unknown };
  (sql as unknown as { json: (v: unknown) => unknown }).json = (v) => v;
  return { sql, completed, state };
}

function fakeClient(
  state: { claimedUnstarted: number },
  kind: (job: Job) => "synced" | "auth_failure" = () => "synced",
) {
  const live = { now: 0, max: 0 };
  const client = {
    syncJob: async (job: Job): Promise<JobReport> => {
      state.claimedUnstarted--;
      live.now++;
      live.max = Math.max(live.max, live.now);
      await new Promise((r) => setTimeout(r, 1));
      live.now--;
      const k = kind(job);
      return {
        outcome: k === "synced" ? { kind: k, visible: false } : { kind: k, retryAtMs: 0 },
        visible: false,
        retryAfterMs: null,
        attempts: [],
      } as unknown as JobReport;
    },
  } as unknown as DynamicsClient;
  return { client, live };
}

const deps = (sql: Sql, client: DynamicsClient) => ({
  sql,
  client,
  policy: { maxAttempts: 5, baseMs: 1000 },
  leaseSeconds: 60,
  concurrency: 4,
  throttledUntil: () => 0,
  gate: new ThrottleGate(),
});

Deno.test("processor: all jobs run and complete once, bounded concurrency and claim buffer", async () => {
  const q = fakeQueue(50);
  const c = fakeClient(q.state);
  const s = await processQueue(deps(q.sql, c.client), {
    maxJobs: 1000,
    deadlineMs: Date.now() + 60_000,
  });
  assertEquals(s.processed, 50);
  assertEquals(s.synced, 50);
  assertEquals(s.more, false);
  assertEquals([...q.completed].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i + 1));
  if (c.live.max > 4) throw new Error(`${c.live.max} jobs ran at once`);
  // ≤ concurrency in the buffer, plus at most one per worker between taking it and sending
  if (q.state.maxUnstarted > 8) throw new Error(`${q.state.maxUnstarted} claimed jobs waited`);
  if (q.state.completeCalls >= 50) throw new Error("completions were not batched");
});

Deno.test("processor: maxJobs bounds the claims", async () => {
  const q = fakeQueue(50);
  const c = fakeClient(q.state);
  const s = await processQueue(deps(q.sql, c.client), {
    maxJobs: 10,
    deadlineMs: Date.now() + 60_000,
  });
  assertEquals(s.processed, 10);
  assertEquals(q.completed.length, 10);
});

Deno.test("processor: an auth failure stops new claims; claimed jobs still complete", async () => {
  const q = fakeQueue(50);
  const c = fakeClient(q.state, (job) => job.jobId === 3 ? "auth_failure" : "synced");
  const s = await processQueue(deps(q.sql, c.client), {
    maxJobs: 1000,
    deadlineMs: Date.now() + 60_000,
  });
  assertEquals(s.more, true);
  assertEquals(s.authFailures, 1);
  if (s.processed >= 50) throw new Error("kept claiming after the auth failure");
  assertEquals(q.state.claimedUnstarted, 0, "no claimed job left unstarted");
  assertEquals(q.completed.length, s.processed);
});
