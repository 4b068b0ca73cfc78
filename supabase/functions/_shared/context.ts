// The per-isolate context: settings, the database pool and the Dynamics client. The client (and
// its token cache) lives as long as the isolate, so a warm function reuses its token.
import { AlertNotifier } from "./alerts.ts";
import { DynamicsClient, type QueuePolicy } from "./core.ts";
import { connect, type Sql } from "./db.ts";
import { HttpError } from "./http.ts";
import { log, registerSecret } from "./log.ts";
import { checkDynamicsUrls, type Settings } from "./settings.ts";
import { dataverseFetch, waitTurn } from "./throttle.ts";
import { credentialProvider, vaultBaseUrl } from "./vault.ts";

export interface Context {
  settings: Settings;
  sql: Sql;
  policy: QueuePolicy;
  /** Delivers new alerts to ALERT_WEBHOOK_URL (a no-op when unset). */
  alerts: AlertNotifier;
  /** The Dynamics client, built on first use (its base URL may come from Vault). */
  client(): Promise<DynamicsClient>;
  /** Test hooks: injected clock and sleeper for the core (defaults: real ones). */
  now: () => number;
}

/** Extra time a backoff of the core may wait for the isolate's gate (the processor keeps 5 s). */
const GATE_WAIT_MAX_MS = 3_000;

/**
 * The core's backoff sleeper: the backoff itself, then the isolate's gate (throttle.ts) - the
 * pause another request was told, one probe after it, the learned pace - so an in-request retry
 * does not burst into a window the other workers are waiting for. Never more than
 * GATE_WAIT_MAX_MS past the backoff (the core's deadline is the caller's; a late retry still
 * faces the limiter and its Retry-After).
 */
export async function gatedSleep(ms: number): Promise<void> {
  if (ms > 0) await new Promise<void>((r) => setTimeout(r, ms));
  await waitTurn(Date.now() + GATE_WAIT_MAX_MS);
}

export function createContext(
  settings: Settings,
  // A pool connection per worker, plus the claim and the completion running beside them.
  sql: Sql = connect(settings.dbUrl, settings.concurrency + 2),
): Context {
  registerSecret(settings.serviceRoleKey);
  registerSecret(settings.jwtSecret);
  registerSecret(settings.envCredentials?.clientSecret);
  let client: Promise<DynamicsClient> | undefined;
  const build = async () => {
    const baseUrl = settings.dynamicsBaseUrl ?? await vaultBaseUrl(sql);
    if (!baseUrl) {
      throw new HttpError(
        "DYNAMICS_UNAVAILABLE",
        "Dynamics is not configured: set DYNAMICS_BASE_URL or the Vault secret dynamics_base_url",
      );
    }
    checkDynamicsUrls(baseUrl, settings.dynamicsTokenUrl);
    return new DynamicsClient(
      {
        baseUrl,
        tokenUrl: settings.dynamicsTokenUrl,
        scope: settings.dynamicsScope,
        visibilityField: settings.visibilityField,
        timeoutMs: settings.timeoutMs,
        backoffBaseMs: settings.backoffBaseMs,
        backoffJitterMs: settings.backoffJitterMs,
        maxAttempts: 3,
      },
      {
        credentials: credentialProvider(sql, settings.envCredentials),
        // Reports Dataverse's Retry-After to the isolate-wide throttle (throttle.ts).
        fetch: dataverseFetch(baseUrl),
        sleep: gatedSleep,
        log: (e) => log(e.level, "dynamics_" + e.event, { message: e.message, code: e.code }),
      },
    );
  };
  return {
    settings,
    sql,
    policy: { maxAttempts: settings.maxAttempts, baseMs: settings.queueRetryBaseMs },
    alerts: new AlertNotifier(sql, { url: settings.alertWebhookUrl }),
    now: Date.now,
    client: () => {
      client ??= build().catch((e) => {
        client = undefined;
        throw e;
      });
      return client;
    },
  };
}
