// The per-isolate context: settings, the database pool and the Dynamics client. The client (and
// its token cache) lives as long as the isolate, so a warm function reuses its token.
import { AlertNotifier } from "./alerts.ts";
import { DynamicsClient, type QueuePolicy } from "./core.ts";
import { connect, type Sql } from "./db.ts";
import { HttpError } from "./http.ts";
import { log, registerSecret } from "./log.ts";
import { checkDynamicsUrls, type Settings } from "./settings.ts";
import { dataverseFetch } from "./throttle.ts";
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

export function createContext(settings: Settings, sql: Sql = connect(settings.dbUrl)): Context {
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
