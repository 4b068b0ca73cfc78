// Shared helpers of the chaos suite and the soak run: a private PostgreSQL cluster (for the
// restart test), bulk seeding, draining under faults, the end-state invariants ("nothing lost,
// nothing wrong") and the PATCH accounting between the mock and sync_audit_log.
//
// Builds on ../e2e/harness.ts (not edited here): a fresh database per harness, the HTTPS mock
// in-process, the function as separate `deno run` processes.
import { type FunctionProcess, type Harness, ROOT, type Sql } from "../e2e/harness.ts";

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A small, fast, seeded RNG (mulberry32) so a chaos or soak run can be replayed. */
export class Rng {
  #s: number;
  constructor(readonly seed: number) {
    this.#s = seed >>> 0;
  }
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

// ---- a private cluster ------------------------------------------------------------------------

/** A throwaway PostgreSQL cluster of this test alone (scripts/lib/pg.sh semantics). */
export interface OwnCluster {
  url: string;
  dir: string;
  /** `pg_ctl restart -m fast`: every connection is cut, the server comes back on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function bash(script: string, env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  if (!out.success) throw new Error(`bash failed: ${script}\n${d.decode(out.stderr)}`);
  return d.decode(out.stdout);
}

export async function startOwnCluster(): Promise<OwnCluster> {
  const dir = await Deno.makeTempDir({ prefix: "hlf-chaos-pg-" });
  const out = await bash(
    `. scripts/lib/common.sh && . scripts/lib/pg.sh && pg_start_throwaway "$DIR" >&2 && echo "$DATABASE_URL"`,
    { DIR: dir },
  );
  const url = out.trim().split("\n").pop()!;
  const asPostgres = Deno.uid() === 0 ? "runuser -u postgres -- " : "";
  return {
    url,
    dir,
    restart: async () => {
      await bash(
        `${asPostgres}/usr/lib/postgresql/15/bin/pg_ctl -D "$DIR/data" -l "$DIR/server.log" -m fast -w restart >/dev/null`,
        { DIR: dir },
      );
    },
    stop: async () => {
      await bash(`. scripts/lib/common.sh && . scripts/lib/pg.sh && pg_stop_throwaway`, {
        PG_THROWAWAY_DIR: dir,
      });
    },
  };
}

/** Runs `fn` with DATABASE_URL pointing at `url` (Harness.start reads it), then restores it. */
export async function withDatabaseUrl<T>(url: string, fn: () => Promise<T>): Promise<T> {
  const before = Deno.env.get("DATABASE_URL");
  Deno.env.set("DATABASE_URL", url);
  try {
    return await fn();
  } finally {
    if (before === undefined) Deno.env.delete("DATABASE_URL");
    else Deno.env.set("DATABASE_URL", before);
  }
}

// ---- seeding ----------------------------------------------------------------------------------

export interface SeededMentor {
  id: string;
  contactId: string;
  org: "HLF" | "NHF";
}

/**
 * `n` mentors of one organisation in one statement each for mentors, certifications and mapping,
 * settled: portal = desired visibility (or `portal` when given), no queue or audit rows.
 * `status` and `certDays` are per-index functions so a run can spread its mentors out.
 */
export async function seedMentors(
  h: Harness,
  orgId: string,
  chapterId: string,
  n: number,
  o: {
    status?: (i: number) => "active" | "paused" | "expired_cert";
    certDays?: (i: number) => number | null;
    portal?: (i: number, desired: boolean) => boolean;
    org?: "HLF" | "NHF";
  } = {},
): Promise<SeededMentor[]> {
  const rows = Array.from({ length: n }, (_, i) => ({
    id: crypto.randomUUID(),
    contact: crypto.randomUUID(),
    status: o.status?.(i) ?? "active",
    cert: o.certDays ? o.certDays(i) : 365,
  }));
  await h.sql`insert into public.peer_mentors (id, organization_id, full_name, status)
    select x.id::uuid, ${orgId}::uuid, 'Chaos ' || left(x.id, 8), x.status
      from jsonb_to_recordset(${h.sql.json(rows)}::jsonb) as x(id text, status text)`;
  await h.sql`insert into public.peer_mentor_chapters (mentor_id, chapter_id)
    select x.id::uuid, ${chapterId}::uuid
      from jsonb_to_recordset(${h.sql.json(rows)}::jsonb) as x(id text)`;
  await h.sql`insert into public.certifications (mentor_id, expires_at)
    select x.id::uuid, now() + make_interval(days => x.cert)
      from jsonb_to_recordset(${h.sql.json(rows)}::jsonb) as x(id text, cert int)
     where x.cert is not null`;
  const desired = await desiredById(h.sql, rows.map((r) => r.id));
  const mapped = rows.map((r, i) => {
    const d = desired.get(r.id) ?? false;
    return { ...r, visible: o.portal ? o.portal(i, d) : d };
  });
  await h.sql`insert into public.mentor_dynamics_contacts
      (mentor_id, dynamics_contact_id, last_synced_visible, last_synced_at)
    select x.id::uuid, x.contact::uuid, x.visible, now()
      from jsonb_to_recordset(${h.sql.json(mapped)}::jsonb)
        as x(id text, contact text, visible boolean)`;
  for (const r of mapped) h.mock.addContact(r.contact, r.visible);
  await h.sql`delete from public.sync_queue where mentor_id = any(${
    rows.map((r) => r.id)
  }::uuid[])`;
  await h.sql`delete from public.sync_audit_log
               where mentor_id = any(${rows.map((r) => r.id)}::uuid[])`;
  return rows.map((r) => ({ id: r.id, contactId: r.contact, org: o.org ?? "HLF" }));
}

async function desiredById(sql: Sql, ids: string[]): Promise<Map<string, boolean>> {
  const rows = await sql<{ id: string; d: boolean }[]>`
    select id, public.mentor_desired_visible(id) as d from unnest(${ids}::uuid[]) as id`;
  return new Map(rows.map((r) => [r.id, r.d]));
}

// ---- draining -----------------------------------------------------------------------------------

export async function unfinished(sql: Sql): Promise<number> {
  const [{ n }] = await sql<{ n: number }[]>`
    select count(*)::int as n from public.sync_queue where status in ('pending', 'processing')`;
  return n;
}

/**
 * Calls process_queue on `fns` (round robin, errors of a dying process or database tolerated)
 * until no job is pending or processing. Jobs waiting for their next_attempt_at or an expired
 * lease are simply polled for. Throws after `timeoutMs` with the queue's state.
 */
export async function drainUntilDone(
  h: Harness,
  fns: () => FunctionProcess[],
  timeoutMs = 60_000,
  maxJobs = 100,
): Promise<{ calls: number; errors: number }> {
  const deadline = Date.now() + timeoutMs;
  let calls = 0;
  let errors = 0;
  for (let i = 0;; i++) {
    let left: number;
    try {
      left = await unfinished(h.sql);
    } catch {
      left = -1; // the database is restarting
    }
    if (left === 0) return { calls, errors };
    if (Date.now() > deadline) {
      const state = await h.sql`select status, count(*)::int as n, min(next_attempt_at) as next,
                                       min(locked_until) as lease
                                  from public.sync_queue group by status`.catch((e) => e);
      throw new Error(`queue not drained within ${timeoutMs} ms: ${JSON.stringify(state)}`);
    }
    const live = fns().filter((f) => !f.exited);
    if (live.length === 0) throw new Error("no function process left to drain with");
    const fn = live[i % live.length];
    try {
      const s = await h.processQueue(maxJobs, fn);
      calls++;
      if (s.processed === 0) await sleep(50);
    } catch {
      errors++;
      await sleep(100);
    }
  }
}

// ---- the end-state invariants ----------------------------------------------------------------

export interface EndState {
  jobs: number;
  done: number;
  dead: number;
  deadLetters: number;
  /** Mentors whose mock portal differs from the desired visibility. */
  wrongPortal: string[];
  /** Mentors whose mapping (last_synced_visible) differs from the desired visibility. */
  wrongMapping: string[];
  /** Dead jobs without a dead_letter_queue row or without a dead_letter alert. */
  unalertedDead: number[];
  /** Open (unresolved) failures of mentors without an open dead letter. */
  strayOpenFailures: string[];
  unfinished: number;
}

/**
 * Collects the invariants over every mapped mentor of a sync-enabled organisation: the mock's
 * portal and the mapping must equal the desired visibility computed from the database now,
 * except for mentors whose latest job was dead-lettered and not redriven (those are allowed to
 * be wrong only because an alert says so).
 */
export async function endState(h: Harness): Promise<EndState> {
  const mentors = await h.sql<
    {
      mentor_id: string;
      contact: string;
      desired: boolean;
      synced: boolean | null;
      open_dead: boolean;
    }[]
  >`
    select m.mentor_id, m.dynamics_contact_id::text as contact,
           public.mentor_desired_visible(m.mentor_id) as desired,
           m.last_synced_visible as synced,
           exists (select 1 from public.dead_letter_queue d
                    where d.mentor_id = m.mentor_id and d.redriven_at is null) as open_dead
      from public.mentor_dynamics_contacts m
      join public.peer_mentors pm on pm.id = m.mentor_id
      join public.org_sync_settings s
        on s.organization_id = pm.organization_id and s.dynamics_sync_enabled`;
  const wrongPortal: string[] = [];
  const wrongMapping: string[] = [];
  for (const m of mentors) {
    if (m.open_dead) continue;
    if (h.portalVisible(m.contact) !== m.desired) wrongPortal.push(m.mentor_id);
    if (m.synced !== m.desired) wrongMapping.push(m.mentor_id);
  }
  const [q] = await h.sql<{ jobs: number; done: number; dead: number; unfinished: number }[]>`
    select count(*)::int as jobs, count(*) filter (where status = 'done')::int as done,
           count(*) filter (where status = 'dead')::int as dead,
           count(*) filter (where status in ('pending', 'processing'))::int as unfinished
      from public.sync_queue`;
  const unalerted = await h.sql<{ id: number }[]>`
    select q.id::int from public.sync_queue q
     where q.status = 'dead'
       and (not exists (select 1 from public.dead_letter_queue d where d.job_id = q.id)
         or not exists (select 1 from public.sync_alerts a
                         where a.kind = 'dead_letter' and a.mentor_id = q.mentor_id
                           and a.created_at >= q.created_at))`;
  const stray = await h.sql<{ mentor_id: string }[]>`
    select f.mentor_id from public.dynamics_sync_failures f
     where f.resolved_at is null
       and not exists (select 1 from public.dead_letter_queue d
                        where d.mentor_id = f.mentor_id and d.redriven_at is null)`;
  const [{ n: deadLetters }] = await h.sql<{ n: number }[]>`
    select count(*)::int as n from public.dead_letter_queue`;
  return {
    jobs: q.jobs,
    done: q.done,
    dead: q.dead,
    deadLetters,
    wrongPortal,
    wrongMapping,
    unalertedDead: unalerted.map((r) => r.id),
    strayOpenFailures: stray.map((r) => r.mentor_id),
    unfinished: q.unfinished,
  };
}

/** Throws unless nothing is lost and nothing is wrong (optionally: and nothing dead-lettered). */
export async function assertNothingLost(
  h: Harness,
  o: { allowDead?: boolean } = {},
): Promise<EndState> {
  const s = await endState(h);
  const problems: string[] = [];
  if (s.unfinished > 0) problems.push(`${s.unfinished} job(s) still pending/processing`);
  if (s.unalertedDead.length > 0) {
    problems.push(`dead job(s) without dead letter + alert: ${s.unalertedDead.join(", ")}`);
  }
  if (s.wrongPortal.length > 0) {
    problems.push(`${s.wrongPortal.length} mentor(s) with a wrong portal state`);
  }
  if (s.wrongMapping.length > 0) {
    problems.push(`${s.wrongMapping.length} mentor(s) whose mapping differs from desired`);
  }
  if (s.strayOpenFailures.length > 0) {
    problems.push(`${s.strayOpenFailures.length} open failure(s) without a dead letter`);
  }
  if (!o.allowDead && (s.dead > 0 || s.deadLetters > 0)) {
    problems.push(`${s.dead} dead job(s), ${s.deadLetters} dead letter(s)`);
  }
  if (problems.length > 0) {
    throw new Error(`invariants violated:\n  ${problems.join("\n  ")}\n${JSON.stringify(s)}`);
  }
  return s;
}

// ---- PATCH accounting -------------------------------------------------------------------------

/**
 * Who sent which PATCH: each function process is warmed up with `health` right after it starts
 * (that forgets any token, fetches a fresh one and calls WhoAmI with it), so the bearer of the
 * WhoAmI request names the process's token. Tokens are never refreshed in a chaos run (lifetime
 * about an hour, no 401 injected), so every later request carrying it came from that process.
 */
export class TokenBook {
  readonly #owner = new Map<string, FunctionProcess>();
  readonly killed = new Set<FunctionProcess>();

  async warmUp(h: Harness, fn: FunctionProcess): Promise<void> {
    const from = h.mock.requests.length;
    // A global 429 storm injected by the soak may answer the first health calls; the warm-up
    // only needs one WhoAmI with the process's token, so it asks again (bounded).
    let r = await h.invoke({ action: "health" }, { fn });
    for (let i = 0; i < 10 && r.status === 503 && r.text.includes("THROTTLED"); i++) {
      await new Promise((done) => setTimeout(done, 500));
      r = await h.invoke({ action: "health" }, { fn });
    }
    if (r.status !== 200) {
      throw new Error(`health on a new process answered ${r.status}: ${r.text}`);
    }
    const who = h.mock.requests.slice(from).filter((x) =>
      x.kind === "api" && x.method === "GET" && /\/WhoAmI(\(\))?$/.test(x.path)
    );
    const tokens = new Set(who.map((x) => bearer(x.headers["authorization"])));
    // Each health call starts from a fresh token, so a retried warm-up names several; all are
    // this process's.
    if (tokens.size === 0 || tokens.has(undefined)) {
      throw new Error(`could not attribute a token: ${tokens.size}`);
    }
    for (const t of tokens) this.#owner.set(t!, fn);
  }

  owner(token: string | undefined): FunctionProcess | undefined {
    return token === undefined ? undefined : this.#owner.get(token);
  }
}

function bearer(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)/i.exec(header ?? "")?.[1];
}

export interface Accounting {
  /** PATCHes the mock received. */
  patches: number;
  /** … answered with an HTTP status. */
  answered: number;
  /** … dropped by the mock without an answer (reset scenario). */
  resets: number;
  /** sync_audit_log rows event = 'dynamics_attempt' (every one is a set_visibility PATCH). */
  audited: number;
  /** PATCHes not in the audit log, all of them sent by a process that was later killed -9. */
  lostWithKilledProcess: number;
  /** Violations (empty = the audit log accounts for every PATCH). */
  problems: string[];
}

/**
 * The accounting, per contact: let P be the PATCHes the mock received for the contact (status,
 * or "no answer" for a reset) and A the contact's mentor's `dynamics_attempt` audit rows
 * (http_status, or null when no answer came). Then
 *   1. A ⊆ P as multisets of status: nothing is audited that Dynamics did not receive;
 *   2. P − A consists only of PATCHes sent by processes that were killed -9: a worker that dies
 *      between its PATCH and sync_complete cannot write the attempt (the job itself is retried
 *      after its lease), every other PATCH is audited;
 *   3. no PATCH is still unanswered at the mock, and every PATCH carried a token of a known
 *      process.
 * A dynamics_attempt row with http_status null and no PATCH at the mock (a connection that never
 * reached it) would break 1; chaos runs inject no such faults.
 */
export async function patchAccounting(h: Harness, book: TokenBook): Promise<Accounting> {
  const problems: string[] = [];
  const patches = h.patches();
  const byContact = new Map<string, { status: number | null; killed: boolean }[]>();
  for (const p of patches) {
    if (p.outcome === "pending") problems.push(`PATCH #${p.seq} never answered`);
    const fn = book.owner(bearer(p.headers["authorization"]));
    if (!fn) problems.push(`PATCH #${p.seq} carried a token of no known process`);
    const list = byContact.get(p.contactId ?? "") ?? [];
    list.push({
      status: p.outcome === "answered" ? p.status ?? null : null,
      killed: !!fn && book.killed.has(fn),
    });
    byContact.set(p.contactId ?? "", list);
  }
  const audit = await h.sql<{ contact: string; status: number | null }[]>`
    select lower(m.dynamics_contact_id::text) as contact, a.http_status as status
      from public.sync_audit_log a
      join public.mentor_dynamics_contacts m on m.mentor_id = a.mentor_id
     where a.event = 'dynamics_attempt'`;
  const auditByContact = new Map<string, (number | null)[]>();
  for (const a of audit) {
    const l = auditByContact.get(a.contact) ?? [];
    l.push(a.status);
    auditByContact.set(a.contact, l);
  }
  let lost = 0;
  const contacts = new Set([...byContact.keys(), ...auditByContact.keys()]);
  for (const c of contacts) {
    const sent = [...(byContact.get(c) ?? [])];
    for (const status of auditByContact.get(c) ?? []) {
      // Prefer matching a PATCH of a live process: those must all be audited.
      let i = sent.findIndex((s) => s.status === status && !s.killed);
      if (i < 0) i = sent.findIndex((s) => s.status === status);
      if (i < 0) {
        problems.push(`contact ${c}: audited attempt (${status}) that the mock never received`);
        continue;
      }
      sent.splice(i, 1);
    }
    for (const s of sent) {
      if (s.killed) lost++;
      else problems.push(`contact ${c}: PATCH (${s.status}) of a live process is not audited`);
    }
  }
  return {
    patches: patches.length,
    answered: patches.filter((p) => p.outcome === "answered").length,
    resets: patches.filter((p) => p.outcome === "reset").length,
    audited: audit.length,
    lostWithKilledProcess: lost,
    problems,
  };
}
