/** Configuration of a DynamicsClient. Only `baseUrl` is required; it must be `https://`. */
export interface ClientConfig {
  /** Dataverse organisation URL, e.g. `https://hlf.crm4.dynamics.com`. */
  baseUrl: string;
  /** OAuth2 token endpoint; `{tenant}` is replaced. Default: Azure AD v2 for the tenant. */
  tokenUrl?: string;
  /** Token scope. Default `{baseUrl}/.default`. */
  scope?: string;
  /** Boolean contact column that lists a mentor. Default `hlf_portalvisible`. */
  visibilityField?: string;
  /** Per-attempt timeout. Default 10000. */
  timeoutMs?: number;
  /** In-request attempts (1-10). Default 3. */
  maxAttempts?: number;
  /** Backoff base: delay = base·2^(attempt−1) + jitter. Default 2000. */
  backoffBaseMs?: number;
  /** Jitter upper bound, uniform. Default 500. */
  backoffJitterMs?: number;
  /** Longest single backoff or Retry-After wait. Default 30000. */
  backoffCapMs?: number;
  /** `Prefer: odata.maxpagesize`. Default 500. */
  pageSize?: number;
  /** Contact ids named per read request. Default 100. */
  readChunk?: number;
  /** Seed of the jitter RNG (tests); random when absent. */
  rngSeed?: number;
}

/** Azure AD application credentials, as the credential provider returns them. */
export interface Credentials {
  tenantId: string;
  clientId: string;
  clientSecret: string;
}

/** One log entry; messages never contain a secret or token. */
export interface LogEntry {
  level: "info" | "warn" | "error";
  event: string;
  message: string;
  code?: string;
}

/** The callbacks the client uses for everything outside the core. */
export interface ClientIo {
  /** Called for every token fetch (about once an hour): read Vault or the environment. */
  credentials: () => Credentials | Promise<Credentials>;
  /** Default: the runtime's `fetch`. */
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  /** Milliseconds since the epoch. Default: `Date.now`. */
  now?: () => number;
  /** Backoff sleeper. Default: a real timer. */
  sleep?: (ms: number) => Promise<void>;
  log?: (entry: LogEntry) => void;
}

/** Options of one call. */
export interface CallOptions {
  /** Absolute time (epoch ms) after which no attempt starts and no sleep ends. */
  deadlineMs?: number;
}

/** One request a call made. */
export interface AttemptRecord {
  attempt: number;
  request: "token" | "set_visibility" | "read_visibility" | "who_am_i";
  httpStatus: number | null;
  errorCode: string | null;
  durationMs: number;
}

/** Why a call failed. */
export interface CallError {
  code:
    | "AUTH_FAILED"
    | "FORBIDDEN"
    | "NOT_FOUND"
    | "BAD_REQUEST"
    | "PRECONDITION_FAILED"
    | "THROTTLED"
    | "SERVER_ERROR"
    | "TIMEOUT"
    | "NETWORK"
    | "INVALID_RESPONSE"
    | "CONFIGURATION";
  message: string;
  transient: boolean;
  auth: boolean;
  httpStatus: number | null;
  retryAfterMs: number | null;
}

/** The result of setVisibility / readVisibility / health. Dynamics errors are reported, not thrown. */
export interface CallReport {
  ok: boolean;
  visible?: boolean;
  contacts?: { contactId: string; visible: boolean | null }[];
  missing?: string[];
  whoAmI?: { userId: string; organizationId: string };
  error: CallError | null;
  attempts: AttemptRecord[];
}

/** A mentor's facts at processing time. */
export interface MentorFacts {
  status: "active" | "paused" | "expired_cert";
  latestCertExpiresAtMs: number | null;
  syncEnabled: boolean;
}

/** A claimed queue job with the facts the decision needs. */
export interface ClaimedJob extends MentorFacts {
  /** Queue-level attempt number of this run (after the claim's increment). */
  attempts: number;
  dynamicsContactId: string | null;
}

/** Queue-level backoff between invocations: base doubling, capped at one hour. */
export interface QueuePolicy {
  maxAttempts: number;
  baseMs: number;
}

/** What the processor applies through `sync_complete`. */
export interface JobOutcome {
  kind: "synced" | "retry" | "dead_letter" | "auth_failure" | "skipped";
  visible?: boolean;
  retryAtMs?: number;
  errorCode?: string;
  reason?: string;
  message?: string;
}

export interface JobReport {
  outcome: JobOutcome;
  visible: boolean | null;
  retryAfterMs: number | null;
  attempts: AttemptRecord[];
}
