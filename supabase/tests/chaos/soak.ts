// The soak run: random status and certification changes over many mentors while random faults
// are injected at the mock (per-contact scenarios switched on and off, short global 429 storms)
// and function processes are killed -9 and replaced; then everything drains until converged.
//
// At the end it checks, and reports:
//   - the mock portal equals the desired visibility (from the database) for 100 % of mentors;
//   - every job is done, or dead with a dead letter and an alert (dead letters are then redriven
//     once the faults are gone, as an operator would, so the portal still converges);
//   - the audit log accounts for every PATCH (chaos_lib.ts patchAccounting: every PATCH of a
//     live process is a dynamics_attempt row with the same HTTP status, nothing is audited that
//     the mock did not receive, and the only unaudited PATCHes were sent by killed processes);
//   - organisations without sync got no PATCH; never two calls for one contact at once.
//
//   scripts/soak.sh [--mentors N] [--changes N] [--seconds S] [--seed N] [--processes N]
//
// The chaos suite runs a bounded version through runSoak(). Standalone (main below) it needs
// DATABASE_URL (scripts/soak.sh starts a throwaway cluster when it is unset).
import { type FunctionProcess, Harness } from "../e2e/harness.ts";
import {
  type Accounting,
  assertNothingLost,
  type EndState,
  endState,
  patchAccounting,
  Rng,
  seedMentors,
  sleep,
  TokenBook,
  unfinished,
} from "./chaos_lib.ts";

export interface SoakOptions {
  mentors: number;
  changes: number;
  /** The change phase is spread over about this many seconds. */
  seconds: number;
  seed: number;
  /** Function processes draining at once (default 3). */
  processes?: number;
  /** Expected kill -9 events (default about one per 8 s of change phase, at least 1). */
  kills?: number;
  /** How long convergence may take after the change phase (default max(120 s, 10 × seconds)). */
  convergeTimeoutMs?: number;
  progress?: (line: string) => void;
}

export interface SoakReport {
  seed: number;
  mentors: number;
  changes: number;
  changeKinds: Record<string, number>;
  jobs: number;
  patches: number;
  patchesPerChange: number;
  accounting: Accounting;
  inRequestRetries: number;
  queueRetries: number;
  superseded: number;
  deadLetters: number;
  redriven: number;
  kills: number;
  faultsSet: number;
  faultsInjected: number;
  throttled429: number;
  maxConcurrentPerContact: number;
  changePhaseMs: number;
  convergeMs: number;
  totalMs: number;
  end: EndState;
  problems: string[];
}

/** Environment of the soak's function processes: short leases, fast retries. */
export const SOAK_ENV: Record<string, string> = {
  HLF_SYNC_LEASE_SECONDS: "6",
  HLF_SYNC_CONCURRENCY: "4",
  HLF_SYNC_MAX_ATTEMPTS: "8",
  HLF_QUEUE_RETRY_BASE_MS: "100",
  BACKOFF_MULTIPLIER_MS: "10",
  BACKOFF_JITTER_MS: "5",
  DYNAMICS_TIMEOUT_MS: "5000",
};

type Fault = Parameters<Harness["mock"]["setContactScenario"]>[1];

/** Per-contact faults: transient ones (heal by themselves) and a few permanent ones. */
const FAULTS: Fault[] = [
  "always-503", // until cleared again
  "fail-twice-then-succeed",
  { kind: "429", retryAfterSeconds: 1, times: 2 },
  { kind: "slow", delayMs: 300, times: 2 },
  { kind: "reset", times: 1 },
  { kind: "403", times: 1 }, // permanent: dead letter, alert; redriven at the end
  { kind: "404", times: 1 },
];

export async function runSoak(h: Harness, o: SoakOptions): Promise<SoakReport> {
  const say = o.progress ?? (() => {});
  const rng = new Rng(o.seed);
  const started = Date.now();
  const book = new TokenBook();
  const problems: string[] = [];

  // Token attribution needs one token per process for the whole run (no refresh).
  h.mock.setTokenLifetimeSeconds(3599);

  // ---- seed ------------------------------------------------------------------------------------
  const orgs = await h.seedOrgs();
  const nhfCount = Math.max(2, Math.round(o.mentors * 0.05));
  const pickStatus = () => {
    const x = rng.next();
    return x < 0.7 ? "active" : x < 0.9 ? "paused" : "expired_cert";
  };
  const pickCert = () => {
    const x = rng.next();
    return x < 0.8 ? rng.int(30, 700) : x < 0.9 ? -rng.int(1, 30) : null;
  };
  const hlf = await seedMentors(h, orgs.hlf, orgs.hlfA, o.mentors, {
    status: pickStatus,
    certDays: pickCert,
  });
  const nhf = await seedMentors(h, orgs.nhf, orgs.nhfA, nhfCount, {
    status: pickStatus,
    certDays: pickCert,
    portal: () => true,
    org: "NHF",
  });
  say(`seeded ${hlf.length} HLF mentors and ${nhf.length} NHF mentors (seed ${o.seed})`);

  // ---- processes and drainers ------------------------------------------------------------------
  const live: FunctionProcess[] = [];
  const drainers: Promise<void>[] = [];
  let stopped = false;
  const drain = async (fn: FunctionProcess) => {
    while (!stopped && !fn.exited) {
      try {
        const s = await h.processQueue(50, fn);
        if (s.processed === 0) await sleep(rng.int(20, 80));
      } catch {
        if (fn.exited) return;
        await sleep(100);
      }
    }
  };
  const spawn = async () => {
    const fn = await h.spawnFunction(SOAK_ENV);
    await book.warmUp(h, fn);
    live.push(fn);
    drainers.push(drain(fn));
    return fn;
  };
  for (let i = 0; i < (o.processes ?? 3); i++) await spawn();

  // ---- faults ----------------------------------------------------------------------------------
  const faulted = new Set<string>();
  let faultsSet = 0;
  let kills = 0;
  const expectedKills = o.kills ?? Math.max(1, Math.round(o.seconds / 8));
  const tickMs = 250;
  const killChance = Math.min(1, expectedKills / Math.max(1, (o.seconds * 1000) / tickMs));
  let faultsOn = true;
  const faults = (async () => {
    while (faultsOn) {
      const x = rng.next();
      if (x < 0.4) {
        const m = rng.pick(hlf);
        h.mock.setContactScenario(m.contactId, rng.pick(FAULTS));
        faulted.add(m.contactId);
        faultsSet++;
      } else if (x < 0.75 && faulted.size > 0) {
        const c = rng.pick([...faulted]);
        h.mock.setContactScenario(c, null);
        faulted.delete(c);
      } else if (x < 0.78) {
        h.mock.setScenario({ kind: "429", retryAfterSeconds: 1, times: rng.int(3, 8) });
        faultsSet++;
      }
      if (rng.chance(killChance) && live.length > 0) {
        const victim = rng.pick(live);
        live.splice(live.indexOf(victim), 1);
        book.killed.add(victim);
        await h.killFunction(victim);
        kills++;
        say(`kill -9 of a function process (${kills})`);
        await spawn();
      }
      await sleep(tickMs);
    }
  })();

  // ---- changes ---------------------------------------------------------------------------------
  const changeKinds: Record<string, number> = {};
  const perTick = Math.max(1, Math.ceil(o.changes / Math.max(1, (o.seconds * 1000) / 50)));
  let applied = 0;
  const changeStart = Date.now();
  while (applied < o.changes) {
    for (let k = 0; k < perTick && applied < o.changes; k++, applied++) {
      const m = rng.next() < 0.95 ? rng.pick(hlf) : rng.pick(nhf);
      const x = rng.next();
      let kind: string;
      if (x < 0.55) {
        kind = "status";
        const status = rng.pick(["active", "paused", "expired_cert"] as const);
        await h.sql`update public.peer_mentors set status = ${status}, updated_at = now()
                     where id = ${m.id}`;
      } else if (x < 0.72) {
        kind = "cert_renew";
        await h.sql`insert into public.certifications (mentor_id, expires_at)
                     values (${m.id}, now() + make_interval(days => ${rng.int(10, 700)}::int))`;
      } else if (x < 0.88) {
        kind = "cert_expire";
        await h.sql`update public.certifications set expires_at = now() - interval '1 day'
                     where mentor_id = ${m.id}`;
      } else {
        kind = "cert_delete";
        await h.sql`delete from public.certifications where mentor_id = ${m.id}`;
      }
      changeKinds[kind] = (changeKinds[kind] ?? 0) + 1;
    }
    if (applied % (perTick * 40) === 0) say(`${applied}/${o.changes} changes`);
    await sleep(50);
  }
  const changePhaseMs = Date.now() - changeStart;
  faultsOn = false;
  await faults;
  h.mock.setScenario("always-success");
  for (const c of faulted) h.mock.setContactScenario(c, null);
  say(`changes done in ${changePhaseMs} ms; faults off; converging`);

  // ---- converge ----------------------------------------------------------------------------------
  const convergeStart = Date.now();
  const timeout = o.convergeTimeoutMs ?? Math.max(120_000, o.seconds * 10_000);
  const converge = async () => {
    while (await unfinished(h.sql) > 0) {
      if (Date.now() - convergeStart > timeout) {
        throw new Error(`not converged within ${timeout} ms`);
      }
      await sleep(100);
    }
  };
  await converge();
  // Every dead job must already carry its dead letter and alert; then the operator redrives.
  const beforeRedrive = await endState(h);
  if (beforeRedrive.unalertedDead.length > 0) {
    problems.push(`dead jobs without dead letter + alert: ${beforeRedrive.unalertedDead}`);
  }
  let redriven = 0;
  for (let round = 0; round < 3; round++) {
    const open = await h.sql<{ id: number }[]>`
      select id::int from public.dead_letter_queue where redriven_at is null order by id`;
    if (open.length === 0) break;
    for (const d of open) {
      const r = await h.invoke({ action: "redrive", dead_letter_id: d.id }, { fn: live[0] });
      if (r.status !== 200) problems.push(`redrive ${d.id} answered ${r.status}`);
      else redriven++;
    }
    await converge();
  }
  const convergeMs = Date.now() - convergeStart;
  stopped = true;
  await Promise.all(drainers);
  say(`converged ${convergeMs} ms after the last change; checking`);

  // ---- checks ------------------------------------------------------------------------------------
  let end: EndState;
  try {
    end = await assertNothingLost(h, { allowDead: true });
  } catch (e) {
    problems.push(String(e));
    end = await endState(h);
  }
  const [{ open_dead }] = await h.sql<{ open_dead: number }[]>`
    select count(*)::int as open_dead from public.dead_letter_queue where redriven_at is null`;
  if (open_dead > 0) problems.push(`${open_dead} dead letter(s) left after redrive`);
  for (const m of nhf) {
    if (h.patches(m.contactId).length > 0) problems.push(`NHF mentor ${m.id} got a PATCH`);
    if (h.portalVisible(m.contactId) !== true) problems.push(`NHF contact ${m.contactId} changed`);
  }
  const accounting = await patchAccounting(h, book);
  problems.push(...accounting.problems.slice(0, 20));
  if (h.mock.maxConcurrentPerContact > 1) {
    problems.push(`${h.mock.maxConcurrentPerContact} calls for one contact at once`);
  }
  const [fig] = await h.sql<
    { in_request: number; queue: number; superseded: number; dead: number; jobs: number }[]
  >`select
      count(*) filter (where event = 'dynamics_attempt' and attempt > 1)::int as in_request,
      count(*) filter (where event = 'retry_scheduled')::int as queue,
      count(*) filter (where event = 'superseded')::int as superseded,
      count(*) filter (where event = 'dead_lettered')::int as dead,
      (select count(*)::int from public.sync_queue) as jobs
    from public.sync_audit_log`;
  const counters = h.mock.counters();
  for (const fn of [...live]) await h.killFunction(fn);
  return {
    seed: o.seed,
    mentors: o.mentors,
    changes: applied,
    changeKinds,
    jobs: fig.jobs,
    patches: accounting.patches,
    patchesPerChange: accounting.patches / Math.max(1, applied),
    accounting,
    inRequestRetries: fig.in_request,
    queueRetries: fig.queue,
    superseded: fig.superseded,
    deadLetters: fig.dead,
    redriven,
    kills,
    faultsSet,
    faultsInjected: counters.faultsInjected,
    throttled429: h.patches().filter((p) => p.status === 429).length,
    maxConcurrentPerContact: h.mock.maxConcurrentPerContact,
    changePhaseMs,
    convergeMs,
    totalMs: Date.now() - started,
    end,
    problems,
  };
}

export function formatReport(r: SoakReport): string {
  const a = r.accounting;
  const lines = [
    `seed                      ${r.seed}`,
    `mentors                   ${r.mentors} (HLF) + NHF controls`,
    `changes                   ${r.changes} ${JSON.stringify(r.changeKinds)}`,
    `jobs (outbox rows)        ${r.jobs}`,
    `PATCHes sent              ${r.patches} (${r.patchesPerChange.toFixed(2)} per change)`,
    `  answered / reset        ${a.answered} / ${a.resets}; 429s: ${r.throttled429}`,
    `  audited attempts        ${a.audited}; unaudited, all from killed processes: ${a.lostWithKilledProcess}`,
    `retries                   in-request ${r.inRequestRetries}, queue-level ${r.queueRetries}, superseded ${r.superseded}`,
    `dead letters              ${r.deadLetters} (all alerted; redriven ${r.redriven})`,
    `faults                    ${r.faultsSet} scenarios set, ${r.faultsInjected} requests faulted, ${r.kills} kill -9`,
    `max calls per contact     ${r.maxConcurrentPerContact}`,
    `portal == desired         ${
      r.end.wrongPortal.length === 0 ? "100 %" : `${r.end.wrongPortal.length} wrong`
    }`,
    `change phase              ${(r.changePhaseMs / 1000).toFixed(1)} s`,
    `time to converge          ${(r.convergeMs / 1000).toFixed(1)} s after the last change`,
    `total                     ${(r.totalMs / 1000).toFixed(1)} s`,
    r.problems.length === 0 ? "RESULT: OK" : `RESULT: FAILED\n  ${r.problems.join("\n  ")}`,
  ];
  return lines.join("\n");
}

function parseArgs(args: string[]): SoakOptions {
  const o: SoakOptions = {
    mentors: 300,
    changes: 3000,
    seconds: 60,
    seed: Math.floor(Math.random() * 2 ** 31),
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = Number(args[++i]);
    if (!Number.isInteger(value) || value < 0) throw new Error(`${flag} needs a whole number`);
    switch (flag) {
      case "--mentors":
        o.mentors = Math.max(1, value);
        break;
      case "--changes":
        o.changes = value;
        break;
      case "--seconds":
        o.seconds = Math.max(1, value);
        break;
      case "--seed":
        o.seed = value;
        break;
      case "--processes":
        o.processes = Math.max(1, value);
        break;
      case "--kills":
        o.kills = value;
        break;
      default:
        throw new Error(`unknown option ${flag}`);
    }
  }
  return o;
}

if (import.meta.main) {
  let opts: SoakOptions;
  try {
    opts = parseArgs(Deno.args);
  } catch (e) {
    console.error(`soak: ${(e as Error).message}`);
    Deno.exit(2);
  }
  const t0 = Date.now();
  const log = (line: string) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s] ${line}`);
  log(
    `soak: ${opts.mentors} mentors, ${opts.changes} changes over ~${opts.seconds} s, seed ${opts.seed}`,
  );
  const h = await Harness.start({
    functions: 0,
    credentials: "env",
    dbPrefix: "hlf_soak",
    mock: { recordLimit: Infinity },
  });
  let report: SoakReport | undefined;
  try {
    report = await runSoak(h, { ...opts, progress: log });
    const findings = await h.secretFindings();
    if (findings.length > 0) report.problems.push(`secrets leaked: ${findings.join("; ")}`);
  } catch (e) {
    console.error(`soak: ${e instanceof Error ? e.stack : e}`);
  } finally {
    await h.close();
  }
  if (!report) Deno.exit(1);
  console.log(formatReport(report));
  Deno.exit(report.problems.length === 0 ? 0 : 1);
}
