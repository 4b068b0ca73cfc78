// End-to-end harness: a fresh, migrated PostgreSQL database, the HTTPS Azure AD + Dataverse mock
// in-process, and the real function as separate `deno run` processes (as `scripts/serve.sh`
// serves it), plus seeding, JWT minting, invocation, polling and a secret scan.
//
// Needs DATABASE_URL (any database on a cluster where the test may CREATE DATABASE); every
// harness creates its own database from it and drops it at `close()`.
//
//   const h = await Harness.start({ credentials: "vault", env: { HLF_SYNC_MAX_ATTEMPTS: "3" } });
//   const fn = await h.spawnFunction();        // more processes: call again
//   ...; await h.close();
//
// Reusable for later suites (chaos, bench): everything a test needs is public here.
import postgres from "postgres";
import { SignJWT } from "jose";
import { generateTestCa, type TestCa } from "../mock/certs.ts";
import {
  type DynamicsMock,
  type DynamicsMockOptions,
  type RecordedRequest,
  startDynamicsMock,
} from "../mock/dynamics_mock.ts";

export type Sql = postgres.Sql;

export const ROOT = new URL("../../../", import.meta.url).pathname;
export const DENO = `${ROOT}node_modules/deno/deno`;
export const FUNCTION_ENTRY = `${ROOT}supabase/functions/hlf-dynamics-sync/index.ts`;
export const FUNCTION_PATH = "/functions/v1/hlf-dynamics-sync";

/** A random printable secret; long enough for the function's log redaction (>= 6 chars). */
export function randomSecret(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export interface HarnessOptions {
  /** Where the function gets its Azure AD credentials: its environment or Vault (default env). */
  credentials?: "env" | "vault";
  /** Extra environment for every function process (overrides the defaults below). */
  env?: Record<string, string>;
  /** Options for the mock (certificates and client secret are supplied by the harness). */
  mock?: Partial<DynamicsMockOptions>;
  /** Database name prefix (default "hlf_e2e"). */
  dbPrefix?: string;
}

export interface InvokeOptions {
  /** Bearer token; default the service role key; null sends no Authorization header. */
  token?: string | null;
  /** Which function process (default the first). */
  fn?: FunctionProcess;
  method?: string;
  /** Raw body (string/bytes) instead of JSON.stringify(body). */
  raw?: BodyInit;
  headers?: Record<string, string>;
}

export interface Invoked<T = Record<string, unknown>> {
  status: number;
  text: string;
  json: T;
  headers: Headers;
}

export interface MentorSeed {
  org: string;
  chapters?: string[];
  name?: string;
  status?: "active" | "paused" | "expired_cert";
  /** Days from now of the certification's expiry; null = no certification (default 365). */
  certDays?: number | null;
  /** Dynamics contact id; default a random one; null = no mapping row. */
  contactId?: string | null;
  /** Initial portal visibility at the mock (default: desired visibility). */
  portalVisible?: boolean;
  /** Initial mentor_dynamics_contacts.last_synced_visible (default = portalVisible). */
  lastSyncedVisible?: boolean | null;
}

export interface Mentor {
  id: string;
  contactId: string;
}

export interface QueueRow {
  id: number;
  mentor_id: string;
  operation: string;
  status: string;
  triggered_by_event: string;
  attempts: number;
  next_attempt_at: Date;
  locked_until: Date | null;
  last_error: string | null;
}

export interface AuditRow {
  id: number;
  mentor_id: string | null;
  job_id: number | null;
  event: string;
  operation: string | null;
  http_status: number | null;
  error_code: string | null;
  attempt: number | null;
}

/** A running function process with its captured output. */
export class FunctionProcess {
  #out: Uint8Array[] = [];
  #err: Uint8Array[] = [];
  #pumps: Promise<void>[];
  #status: Promise<Deno.CommandStatus>;
  #exited = false;

  constructor(
    readonly child: Deno.ChildProcess,
    readonly port: number,
    readonly groupKill: boolean,
  ) {
    const pump = async (stream: ReadableStream<Uint8Array>, into: Uint8Array[]) => {
      try {
        for await (const chunk of stream) into.push(chunk);
      } catch { /* process died */ }
    };
    this.#pumps = [pump(child.stdout, this.#out), pump(child.stderr, this.#err)];
    this.#status = child.status.then((s) => {
      this.#exited = true;
      return s;
    });
  }

  get pid(): number {
    return this.child.pid;
  }
  /** `http://127.0.0.1:PORT` (the Supabase project URL stand-in). */
  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  get url(): string {
    return this.origin + FUNCTION_PATH;
  }
  get exited(): boolean {
    return this.#exited;
  }
  get status(): Promise<Deno.CommandStatus> {
    return this.#status;
  }
  stdout(): string {
    return decode(this.#out);
  }
  stderr(): string {
    return decode(this.#err);
  }

  /** Sends a signal to the process group (the process leads its own group when setsid exists). */
  signal(sig: Deno.Signal): void {
    if (this.#exited) return;
    try {
      if (this.groupKill) Deno.kill(-this.pid, sig);
      else this.child.kill(sig);
    } catch {
      try {
        this.child.kill(sig);
      } catch { /* already gone */ }
    }
  }

  /** kill -9, then waits for the exit and the end of its output. */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.#status;
    await Promise.all(this.#pumps);
  }

  /** SIGTERM, then SIGKILL if it does not exit within 3 s. */
  async stop(): Promise<void> {
    if (!this.#exited) {
      this.signal("SIGTERM");
      const timer = setTimeout(() => this.signal("SIGKILL"), 3_000);
      await this.#status;
      clearTimeout(timer);
    }
    await Promise.all(this.#pumps);
  }
}

function decode(chunks: Uint8Array[]): string {
  const d = new TextDecoder();
  return chunks.map((c) => d.decode(c, { stream: true })).join("") + d.decode();
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const HAS_SETSID = (() => {
  try {
    return Deno.statSync("/usr/bin/setsid").isFile;
  } catch {
    return false;
  }
})();

/** Polls `fn` until it returns a truthy value (returned) or `timeoutMs` passes (throws). */
export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 15_000,
  intervalMs = 25,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class Harness {
  readonly serviceRoleKey = randomSecret("e2e-service-role");
  readonly jwtSecret = randomSecret("e2e-jwt-secret");
  readonly anonKey = "e2e-anon-key-not-secret";
  readonly functions: FunctionProcess[] = [];
  /** Every function response body seen (for the secret scan). */
  readonly responses: string[] = [];
  /** Access tokens seen on the mock before its request log was cleared (for the secret scan). */
  readonly #tokensSeen = new Set<string>();
  /** Output of processes already gone (for the secret scan). */
  #pastOutput: string[] = [];
  readonly #client: Deno.HttpClient;

  private constructor(
    readonly opts: HarnessOptions,
    readonly dbUrl: string,
    readonly sql: Sql,
    readonly ca: TestCa,
    readonly caDir: string,
    readonly mock: DynamicsMock,
    readonly adminUrl: string,
    readonly dbName: string,
    /** The Azure AD client secret the mock accepts (env or Vault, per the options). */
    readonly clientSecret: string,
  ) {
    this.#client = Deno.createHttpClient({ caCerts: [ca.caCertPem] });
  }

  /** Creates the database, migrates it, starts the mock and (unless `functions: 0`) one function. */
  static async start(opts: HarnessOptions & { functions?: number } = {}): Promise<Harness> {
    const adminUrl = Deno.env.get("DATABASE_URL");
    if (!adminUrl) throw new Error("DATABASE_URL is not set (scripts/test.sh e2e sets it)");
    const dbName = `${opts.dbPrefix ?? "hlf_e2e"}_${crypto.randomUUID().slice(0, 8)}`;
    const dbUrl = withDatabase(adminUrl, dbName);
    const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
    try {
      await admin.unsafe(`create database ${dbName}`);
    } finally {
      await admin.end({ timeout: 5 });
    }
    const migrate = await new Deno.Command(`${ROOT}scripts/migrate.sh`, {
      cwd: ROOT,
      env: { DATABASE_URL: dbUrl },
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!migrate.success) {
      await dropDatabase(adminUrl, dbName);
      throw new Error(`migrate.sh failed:\n${new TextDecoder().decode(migrate.stderr)}`);
    }
    const sql = postgres(dbUrl, { max: 4, onnotice: () => {} });
    const caDir = await Deno.makeTempDir({ prefix: "hlf-e2e-ca-" });
    const ca = await generateTestCa(caDir);
    const clientSecret = randomSecret("e2e-client-secret");
    const mock = await startDynamicsMock({
      ...opts.mock,
      certPem: ca.certPem,
      keyPem: ca.keyPem,
      clientSecret,
    });
    const h = new Harness(opts, dbUrl, sql, ca, caDir, mock, adminUrl, dbName, clientSecret);
    if ((opts.credentials ?? "env") === "vault") await h.writeVaultCredentials(h.clientSecret);
    for (let i = 0; i < (opts.functions ?? 1); i++) await h.spawnFunction();
    return h;
  }

  /** Creates or updates the three Vault secrets the function reads when its env has none. */
  async writeVaultCredentials(clientSecret: string): Promise<void> {
    const values: [string, string][] = [
      ["dynamics_tenant_id", this.mock.tenantId],
      ["dynamics_client_id", this.mock.clientId],
      ["dynamics_client_secret", clientSecret],
    ];
    for (const [name, value] of values) {
      const [row] = await this.sql<{ id: string }[]>`
        select id from vault.decrypted_secrets where name = ${name}`;
      if (row) await this.sql`select vault.update_secret(${row.id}::uuid, ${value})`;
      else await this.sql`select vault.create_secret(${value}, ${name})`;
    }
  }

  /** The environment a function process gets (nothing else of the test's environment leaks in). */
  functionEnv(port: number, extra: Record<string, string> = {}): Record<string, string> {
    const env: Record<string, string> = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      DENO_TLS_CA_STORE: "system",
      DENO_CERT: this.ca.caCertFile,
      DENO_NO_UPDATE_CHECK: "1",
      NO_COLOR: "1",
      PORT: String(port),
      SUPABASE_DB_URL: this.dbUrl,
      SUPABASE_SERVICE_ROLE_KEY: this.serviceRoleKey,
      SUPABASE_JWT_SECRET: this.jwtSecret,
      DYNAMICS_BASE_URL: this.mock.baseUrl,
      DYNAMICS_TOKEN_URL: this.mock.tokenUrl,
      BACKOFF_MULTIPLIER_MS: "10",
      BACKOFF_JITTER_MS: "5",
      HLF_QUEUE_RETRY_BASE_MS: "0",
      DYNAMICS_TIMEOUT_MS: "5000",
    };
    const denoDir = Deno.env.get("DENO_DIR");
    if (denoDir) env.DENO_DIR = denoDir;
    if ((this.opts.credentials ?? "env") === "env") {
      env.DYNAMICS_TENANT_ID = this.mock.tenantId;
      env.DYNAMICS_CLIENT_ID = this.mock.clientId;
      env.DYNAMICS_CLIENT_SECRET = this.clientSecret;
    }
    return { ...env, ...this.opts.env, ...extra };
  }

  /** Starts one more function process and waits for its GET liveness answer. */
  async spawnFunction(extraEnv: Record<string, string> = {}): Promise<FunctionProcess> {
    const port = freePort();
    const args = [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys=hostname,osRelease",
      "--no-prompt",
      FUNCTION_ENTRY,
    ];
    const child = new Deno.Command(HAS_SETSID ? "setsid" : DENO, {
      args: HAS_SETSID ? [DENO, ...args] : args,
      cwd: ROOT,
      clearEnv: true,
      env: this.functionEnv(port, extraEnv),
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const fn = new FunctionProcess(child, port, HAS_SETSID);
    this.functions.push(fn);
    try {
      await waitFor(
        "function liveness",
        async () => {
          if (fn.exited) throw new Error(`function exited early:\n${fn.stderr()}`);
          const res = await fetch(fn.url).catch(() => undefined);
          if (!res) return false;
          await res.body?.cancel();
          return res.status === 200;
        },
        60_000,
        50,
      );
    } catch (e) {
      await fn.kill();
      throw e;
    }
    return fn;
  }

  /** Kills a function process with SIGKILL and forgets it (its output stays for the scan). */
  async killFunction(fn: FunctionProcess): Promise<void> {
    await fn.kill();
    this.#forget(fn);
  }

  #forget(fn: FunctionProcess): void {
    const i = this.functions.indexOf(fn);
    if (i >= 0) this.functions.splice(i, 1);
    this.#pastOutput.push(fn.stdout(), fn.stderr());
  }

  /** POSTs `body` (JSON) to a function process; records the response body for the secret scan. */
  async invoke<T = Record<string, unknown>>(
    body: unknown,
    o: InvokeOptions = {},
  ): Promise<Invoked<T>> {
    const fn = o.fn ?? this.functions[0];
    if (!fn) throw new Error("no function process is running");
    const headers: Record<string, string> = { "content-type": "application/json", ...o.headers };
    const token = o.token === undefined ? this.serviceRoleKey : o.token;
    if (token !== null) headers.authorization = `Bearer ${token}`;
    const method = o.method ?? "POST";
    const payload = o.raw !== undefined
      ? o.raw
      : method === "GET" || method === "HEAD"
      ? undefined
      : JSON.stringify(body);
    const res = await fetch(fn.url, { method, headers, body: payload });
    const text = await res.text();
    this.responses.push(text);
    let json: unknown = undefined;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch { /* not JSON */ }
    return { status: res.status, text, json: json as T, headers: res.headers };
  }

  /** `process_queue` through the service key; throws unless 200. */
  async processQueue(
    maxJobs?: number,
    fn?: FunctionProcess,
  ): Promise<{ processed: number; synced: number; retrying: number; dead: number }> {
    const r = await this.invoke<
      { processed: number; synced: number; retrying: number; dead: number }
    >(
      maxJobs === undefined
        ? { action: "process_queue" }
        : { action: "process_queue", max_jobs: maxJobs },
      { fn },
    );
    if (r.status !== 200) throw new Error(`process_queue answered ${r.status}: ${r.text}`);
    return r.json;
  }

  /** Calls process_queue until no unfinished job is left (or `rounds` calls were made). */
  async drain(rounds = 20, fn?: FunctionProcess): Promise<void> {
    for (let i = 0; i < rounds; i++) {
      await this.processQueue(undefined, fn);
      const [{ n }] = await this.sql<{ n: number }[]>`
        select count(*)::int as n from public.sync_queue where status in ('pending', 'processing')`;
      if (n === 0) return;
    }
    throw new Error(`queue not drained after ${rounds} process_queue calls`);
  }

  // ---- JWTs ------------------------------------------------------------------------------------

  /** An HS256 user JWT as Supabase Auth issues it (role authenticated by default). */
  async jwt(
    sub: string,
    o: { role?: string; expiresIn?: number; secret?: string; claims?: Record<string, unknown> } =
      {},
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return await new SignJWT({ role: o.role ?? "authenticated", aud: "authenticated", ...o.claims })
      .setProtectedHeader({ alg: "HS256", typ: "JWT" })
      .setSubject(sub)
      .setIssuedAt(now - 60)
      .setExpirationTime(now + (o.expiresIn ?? 3600))
      .sign(new TextEncoder().encode(o.secret ?? this.jwtSecret));
  }

  // ---- seeding ----------------------------------------------------------------------------------

  /** Deletes all app and sync rows and resets the mock (portal, requests, scenarios, counters). */
  async reset(): Promise<void> {
    await this.sql`truncate public.sync_queue, public.sync_audit_log, public.dead_letter_queue,
      public.dynamics_sync_failures, public.sync_alerts, public.cert_expiry_reminders,
      public.mentor_dynamics_contacts, public.coordinator_chapters, public.certifications,
      public.peer_mentor_chapters, public.peer_mentors, public.chapters, public.org_sync_settings,
      public.organizations restart identity cascade`;
    for (const t of this.accessTokensSeen()) this.#tokensSeen.add(t);
    this.mock.reset();
    this.mock.clearContacts();
  }

  /** An organisation (code unique), with a sync settings row when `syncEnabled` is given. */
  async org(code: string, syncEnabled?: boolean): Promise<string> {
    const [{ id }] = await this.sql<{ id: string }[]>`
      insert into public.organizations (code, name) values (${code}, ${code}) returning id`;
    if (syncEnabled !== undefined) {
      await this.sql`insert into public.org_sync_settings (organization_id, dynamics_sync_enabled)
                     values (${id}, ${syncEnabled})`;
    }
    return id;
  }

  async chapter(org: string, name: string): Promise<string> {
    const [{ id }] = await this.sql<{ id: string }[]>`
      insert into public.chapters (organization_id, name) values (${org}, ${name}) returning id`;
    return id;
  }

  /** HLF (sync enabled) and NHF (no settings row: disabled), two HLF chapters and one NHF one. */
  async seedOrgs(): Promise<
    { hlf: string; nhf: string; hlfA: string; hlfB: string; nhfA: string }
  > {
    const hlf = await this.org("HLF", true);
    const nhf = await this.org("NHF");
    return {
      hlf,
      nhf,
      hlfA: await this.chapter(hlf, "HLF Oslo"),
      hlfB: await this.chapter(hlf, "HLF Bergen"),
      nhfA: await this.chapter(nhf, "NHF Oslo"),
    };
  }

  /**
   * A mentor with chapters, certification and mapping, in its settled state: the queue and audit
   * rows the seeding itself caused are removed, the mock's contact shows `portalVisible`.
   */
  async mentor(seed: MentorSeed): Promise<Mentor> {
    const status = seed.status ?? "active";
    const certDays = seed.certDays === undefined ? 365 : seed.certDays;
    const contactId = seed.contactId === undefined ? crypto.randomUUID() : seed.contactId;
    const [{ id }] = await this.sql<{ id: string }[]>`
      insert into public.peer_mentors (organization_id, full_name, status)
      values (${seed.org}, ${seed.name ?? "Mentor " + crypto.randomUUID().slice(0, 6)}, ${status})
      returning id`;
    for (const ch of seed.chapters ?? []) {
      await this.sql`insert into public.peer_mentor_chapters (mentor_id, chapter_id)
                     values (${id}, ${ch})`;
    }
    if (certDays !== null) {
      await this.sql`insert into public.certifications (mentor_id, expires_at)
                     values (${id}, now() + make_interval(days => ${certDays}::int))`;
    }
    const [{ desired }] = await this.sql<{ desired: boolean }[]>`
      select public.mentor_desired_visible(${id}::uuid) as desired`;
    const portal = seed.portalVisible ?? desired;
    if (contactId !== null) {
      const synced = seed.lastSyncedVisible === undefined ? portal : seed.lastSyncedVisible;
      await this.sql`insert into public.mentor_dynamics_contacts
                       (mentor_id, dynamics_contact_id, last_synced_visible, last_synced_at)
                     values (${id}, ${contactId}, ${synced}, ${
        synced === null ? null : new Date()
      })`;
      this.mock.addContact(contactId, portal);
    }
    await this.sql`delete from public.sync_queue where mentor_id = ${id}`;
    await this.sql`delete from public.sync_audit_log where mentor_id = ${id}`;
    return { id, contactId: contactId ?? "" };
  }

  /** A coordinator (a user id) assigned to these chapters. */
  async coordinator(chapters: string[]): Promise<string> {
    const user = crypto.randomUUID();
    for (const ch of chapters) {
      await this.sql`insert into public.coordinator_chapters (user_id, chapter_id)
                     values (${user}, ${ch})`;
    }
    return user;
  }

  async setStatus(mentorId: string, status: "active" | "paused" | "expired_cert"): Promise<void> {
    await this.sql`update public.peer_mentors set status = ${status}, updated_at = now()
                   where id = ${mentorId}`;
  }

  // ---- reading state ------------------------------------------------------------------------------

  async jobs(mentorId?: string): Promise<QueueRow[]> {
    const rows = await this.sql<QueueRow[]>`
      select id::int, mentor_id, operation, status, triggered_by_event, attempts, next_attempt_at,
             locked_until, last_error
        from public.sync_queue
       where ${mentorId ?? null}::uuid is null or mentor_id = ${mentorId ?? null}::uuid
       order by id`;
    return [...rows];
  }

  async audit(mentorId?: string): Promise<AuditRow[]> {
    const rows = await this.sql<AuditRow[]>`
      select id::int, mentor_id, job_id::int, event, operation, http_status, error_code, attempt
        from public.sync_audit_log
       where ${mentorId ?? null}::uuid is null or mentor_id = ${mentorId ?? null}::uuid
       order by id`;
    return [...rows];
  }

  async failures(mentorId?: string) {
    return [
      ...await this.sql<
        {
          id: number;
          mentor_id: string;
          job_id: number | null;
          error_code: string | null;
          message: string | null;
          resolved_at: Date | null;
        }[]
      >`select id::int, mentor_id, job_id::int, error_code, message, resolved_at
          from public.dynamics_sync_failures
         where ${mentorId ?? null}::uuid is null or mentor_id = ${mentorId ?? null}::uuid
         order by id`,
    ];
  }

  async alerts(kind?: string) {
    return [
      ...await this.sql<
        {
          id: number;
          kind: string;
          mentor_id: string | null;
          message: string;
          acknowledged_at: Date | null;
        }[]
      >`select id::int, kind, mentor_id, message, acknowledged_at from public.sync_alerts
         where ${kind ?? null}::text is null or kind = ${kind ?? null}::text order by id`,
    ];
  }

  async deadLetters(mentorId?: string) {
    return [
      ...await this.sql<
        {
          id: number;
          job_id: number;
          mentor_id: string;
          operation: string;
          reason: string;
          error_code: string | null;
          redriven_at: Date | null;
        }[]
      >`select id::int, job_id::int, mentor_id, operation, reason, error_code, redriven_at
          from public.dead_letter_queue
         where ${mentorId ?? null}::uuid is null or mentor_id = ${mentorId ?? null}::uuid
         order by id`,
    ];
  }

  async lastSyncedVisible(mentorId: string): Promise<boolean | null> {
    const [row] = await this.sql<{ v: boolean | null }[]>`
      select last_synced_visible as v from public.mentor_dynamics_contacts
       where mentor_id = ${mentorId}`;
    return row?.v ?? null;
  }

  async mentorStatus(mentorId: string): Promise<string> {
    const [row] = await this.sql<{ status: string }[]>`
      select status from public.peer_mentors where id = ${mentorId}`;
    return row.status;
  }

  /** A fingerprint of every app and sync table (for "nothing changed" assertions). */
  async snapshot(): Promise<string> {
    const tables = [
      "organizations",
      "chapters",
      "peer_mentors",
      "peer_mentor_chapters",
      "certifications",
      "coordinator_chapters",
      "org_sync_settings",
      "mentor_dynamics_contacts",
      "sync_queue",
      "sync_audit_log",
      "dead_letter_queue",
      "dynamics_sync_failures",
      "sync_alerts",
      "cert_expiry_reminders",
    ];
    const parts: string[] = [];
    for (const t of tables) {
      const [row] = await this.sql.unsafe<{ h: string | null }[]>(
        `select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as h
           from public.${t} t`,
      );
      parts.push(`${t}:${row.h}`);
    }
    return parts.join("\n");
  }

  // ---- the mock's evidence ----------------------------------------------------------------------

  /** PATCHes the mock received for a contact (answered or not), with the visibility they set. */
  patches(contactId?: string): (RecordedRequest & { visible: boolean | undefined })[] {
    const id = contactId?.toLowerCase();
    return this.mock.requests
      .filter((r) => r.kind === "api" && r.method === "PATCH")
      .filter((r) => id === undefined || r.contactId === id)
      .map((r) => {
        let visible: boolean | undefined;
        try {
          visible = JSON.parse(r.body)[this.mock.visibilityField];
        } catch { /* malformed */ }
        return { ...r, visible };
      });
  }

  tokenRequests(): RecordedRequest[] {
    return this.mock.requests.filter((r) => r.kind === "token");
  }

  portalVisible(contactId: string): boolean | undefined {
    return this.mock.contact(contactId)?.visible;
  }

  /** fetch that trusts the mock's CA (for test-side calls to the mock). */
  mockFetch(url: string, init: RequestInit = {}): Promise<Response> {
    return fetch(url, { ...init, client: this.#client });
  }

  // ---- secret scan --------------------------------------------------------------------------------

  /** Every access token the mock handed out that the function presented (plus issued-token shape). */
  accessTokensSeen(): string[] {
    const tokens = new Set<string>(this.#tokensSeen);
    for (const r of this.mock.requests) {
      const m = /^Bearer\s+(\S+)/i.exec(r.headers["authorization"] ?? "");
      if (m) tokens.add(m[1]);
    }
    return [...tokens];
  }

  /**
   * Where a secret was found: function stdout/stderr, response bodies, or sync table rows.
   * Returns a list of findings (empty = clean). `extraSecrets` adds e.g. a rotated client secret.
   */
  async secretFindings(extraSecrets: string[] = [], extraTokens: string[] = []): Promise<string[]> {
    const secrets = new Map<string, string>([
      ["client secret", this.clientSecret],
      ["service role key", this.serviceRoleKey],
      ["JWT secret", this.jwtSecret],
      ...extraSecrets.map((s, i) => [`extra secret ${i}`, s] as [string, string]),
      ...[...this.accessTokensSeen(), ...extraTokens].map((t, i) =>
        [`access token ${i}`, t] as [string, string]
      ),
    ]);
    const places: [string, string][] = [];
    this.functions.forEach((fn, i) => {
      places.push([`function ${i} stdout`, fn.stdout()], [`function ${i} stderr`, fn.stderr()]);
    });
    this.#pastOutput.forEach((o, i) => places.push([`stopped function output ${i}`, o]));
    this.responses.forEach((r, i) => places.push([`response ${i}`, r]));
    const tables = await this.sql<{ place: string; text: string }[]>`
      select 'sync_audit_log ' || id as place, t::text as text from public.sync_audit_log t
      union all select 'dynamics_sync_failures ' || id, t::text from public.dynamics_sync_failures t
      union all select 'sync_alerts ' || id, t::text from public.sync_alerts t
      union all select 'dead_letter_queue ' || id, t::text from public.dead_letter_queue t
      union all select 'sync_queue.last_error ' || id, coalesce(last_error, '') from public.sync_queue`;
    for (const r of tables) places.push([r.place, r.text]);
    const findings: string[] = [];
    const tokenShape = /mock\.[A-Za-z0-9_-]{40,}/;
    for (const [place, text] of places) {
      for (const [name, value] of secrets) {
        if (value && text.includes(value)) findings.push(`${name} in ${place}`);
      }
      if (tokenShape.test(text)) findings.push(`an access token (mock.*) in ${place}`);
      if (/bearer\s+(?!\[REDACTED\])\S{16,}/i.test(text)) {
        findings.push(`an Authorization bearer value in ${place}`);
      }
    }
    return findings;
  }

  /** Stops every function process, the mock, and drops the database. */
  async close(): Promise<void> {
    for (const fn of [...this.functions]) {
      await fn.stop();
      this.#forget(fn);
    }
    this.#client.close();
    await this.mock.close();
    await this.sql.end({ timeout: 5 });
    await dropDatabase(this.adminUrl, this.dbName);
    await Deno.remove(this.caDir, { recursive: true }).catch(() => {});
  }
}

/** DATABASE_URL with another database name (query string kept). */
export function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`drop database if exists ${name} with (force)`);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

/** A test file's shared harness: started lazily by its first test, reset before every test. */
export interface E2eSuite {
  harness(): Promise<Harness>;
  /** A test on a reset harness; afterwards nothing captured so far may contain a secret. */
  test(name: string, fn: (h: Harness) => Promise<void>): void;
  /** The file's last test: a final secret scan, then teardown. */
  finish(): void;
}

export function e2eSuite(opts: HarnessOptions & { functions?: number } = {}): E2eSuite {
  let started: Promise<Harness> | undefined;
  const harness = () => (started ??= Harness.start(opts));
  const scan = async (h: Harness) => {
    const findings = await h.secretFindings();
    if (findings.length > 0) throw new Error(`secrets leaked:\n  ${findings.join("\n  ")}`);
  };
  return {
    harness,
    test(name, fn) {
      Deno.test({
        name,
        sanitizeOps: false,
        sanitizeResources: false,
        fn: async () => {
          const h = await harness();
          await h.reset();
          await fn(h);
          await scan(h);
        },
      });
    },
    finish() {
      Deno.test({
        name: "no secret in any output, response or row; teardown",
        sanitizeOps: false,
        sanitizeResources: false,
        fn: async () => {
          if (!started) return;
          const h = await started;
          try {
            await scan(h);
          } finally {
            await h.close();
          }
        },
      });
    },
  };
}
