// The function's environment, read once and validated: a bad value stops the function at start
// with a message naming the variable (never its value).
import { validateConfig } from "./core.ts";

export interface Settings {
  dbUrl: string;
  serviceRoleKey: string;
  jwtSecret?: string;
  jwks?: string;
  dynamicsBaseUrl?: string;
  dynamicsTokenUrl?: string;
  dynamicsScope?: string;
  visibilityField: string;
  envCredentials?: { tenantId: string; clientId: string; clientSecret: string };
  backoffBaseMs: number;
  backoffJitterMs: number;
  timeoutMs: number;
  queueRetryBaseMs: number;
  maxAttempts: number;
  leaseSeconds: number;
  alertWebhookUrl?: string;
  /** Concurrent Dataverse calls per invocation (Dataverse allows 52 per user). */
  concurrency: number;
  /** Wall budget of one invocation; stop claiming with time left (Supabase's limit is 150 s). */
  wallBudgetMs: number;
}

export class SettingsError extends Error {
  override name = "SettingsError";
}

type Env = (name: string) => string | undefined;

export function loadSettings(env: Env = (n) => Deno.env.get(n)): Settings {
  const get = (name: string) => {
    const v = env(name)?.trim();
    return v === "" ? undefined : v;
  };
  const required = (name: string) => {
    const v = get(name);
    if (!v) throw new SettingsError(`${name} is required`);
    return v;
  };
  const int = (name: string, fallback: number, min: number, max: number) => {
    const raw = get(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new SettingsError(`${name} must be an integer between ${min} and ${max}`);
    }
    return n;
  };
  const jwtSecret = get("SUPABASE_JWT_SECRET");
  const jwks = get("SUPABASE_JWKS");
  if (!jwtSecret && !jwks) {
    throw new SettingsError("SUPABASE_JWT_SECRET (or SUPABASE_JWKS) is required");
  }
  const dynamicsBaseUrl = get("DYNAMICS_BASE_URL");
  const dynamicsTokenUrl = get("DYNAMICS_TOKEN_URL");
  if (dynamicsBaseUrl) checkDynamicsUrls(dynamicsBaseUrl, dynamicsTokenUrl);
  const tenantId = get("DYNAMICS_TENANT_ID");
  const clientId = get("DYNAMICS_CLIENT_ID");
  const clientSecret = get("DYNAMICS_CLIENT_SECRET");
  const anyCred = tenantId || clientId || clientSecret;
  if (anyCred && !(tenantId && clientId && clientSecret)) {
    throw new SettingsError(
      "DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID and DYNAMICS_CLIENT_SECRET must be set together (or none, to use Vault)",
    );
  }
  const alertWebhookUrl = get("ALERT_WEBHOOK_URL");
  if (alertWebhookUrl && !/^https?:\/\//.test(alertWebhookUrl)) {
    throw new SettingsError("ALERT_WEBHOOK_URL must be an http(s) URL");
  }
  return {
    dbUrl: required("SUPABASE_DB_URL"),
    serviceRoleKey: required("SUPABASE_SERVICE_ROLE_KEY"),
    jwtSecret,
    jwks,
    dynamicsBaseUrl,
    dynamicsTokenUrl,
    dynamicsScope: get("DYNAMICS_SCOPE"),
    visibilityField: get("DYNAMICS_VISIBILITY_FIELD") ?? "hlf_portalvisible",
    envCredentials: tenantId && clientId && clientSecret
      ? { tenantId, clientId, clientSecret }
      : undefined,
    backoffBaseMs: int("BACKOFF_MULTIPLIER_MS", 2000, 0, 600_000),
    backoffJitterMs: int("BACKOFF_JITTER_MS", 500, 0, 600_000),
    timeoutMs: int("DYNAMICS_TIMEOUT_MS", 10_000, 1, 120_000),
    queueRetryBaseMs: int("HLF_QUEUE_RETRY_BASE_MS", 60_000, 0, 3_600_000),
    maxAttempts: int("HLF_SYNC_MAX_ATTEMPTS", 8, 1, 100),
    leaseSeconds: int("HLF_SYNC_LEASE_SECONDS", 180, 1, 86_400),
    alertWebhookUrl,
    concurrency: int("HLF_SYNC_CONCURRENCY", 8, 1, 52),
    wallBudgetMs: int("HLF_WALL_BUDGET_MS", 120_000, 1_000, 150_000),
  };
}

/** Throws a SettingsError when the Dynamics URLs are not https (checked by the Rust core). */
export function checkDynamicsUrls(baseUrl: string, tokenUrl?: string): void {
  try {
    validateConfig({ baseUrl, tokenUrl });
  } catch (e) {
    throw new SettingsError(e instanceof Error ? e.message : String(e));
  }
}
