// Alert delivery: every NEW sync_alerts row (sync_complete's alert_id, sync_record_alert's id;
// never a deduplicated one, for which the database returns null) is also POSTed to
// ALERT_WEBHOOK_URL as JSON {kind, mentor_id, message, alert_id, created_at}.
//
// Delivery runs beside the sync, never in its way: notify() returns at once and never throws;
// each alert gets a few short tries (network errors, timeouts, 408/429/5xx are retried; other
// 4xx are not); a delivery that still fails is logged (alert_delivery_failed) and the alert row
// stays in the database for operators. In Supabase's edge runtime the deliveries are handed to
// EdgeRuntime.waitUntil so they finish after the response; a process that exits (the CLI) calls
// flush() first.
//
// The payload carries only what the alert row holds (rows never contain secrets) and is
// scrubbed by the log redactor once more. The webhook URL itself is treated as a secret (chat
// webhooks carry their credential in the path): logs name only its origin.
import type { Sql } from "./db.ts";
import { describe, log, redact, registerSecret } from "./log.ts";

export interface AlertPayload {
  kind: string;
  mentor_id: string | null;
  message: string;
  alert_id: number;
  created_at: string;
}

export interface AlertNotifierOptions {
  /** ALERT_WEBHOOK_URL; when unset notify() does nothing. */
  url?: string;
  /** Tries per alert (default 3). */
  attempts?: number;
  /** Backoff base between tries: base·2^(try−1) (default 250 ms). */
  backoffMs?: number;
  /** Per-try timeout (default 3000 ms). */
  timeoutMs?: number;
  /** Deliveries in flight at once (default 4). */
  concurrency?: number;
  fetch?: (url: string, init: RequestInit) => Promise<Response>;
  sleep?: (ms: number) => Promise<void>;
}

interface EdgeRuntimeGlobal {
  EdgeRuntime?: { waitUntil?: (p: Promise<unknown>) => void };
}

export class AlertNotifier {
  readonly #sql: Sql;
  readonly #url: string | undefined;
  readonly #origin: string;
  readonly #attempts: number;
  readonly #backoffMs: number;
  readonly #timeoutMs: number;
  readonly #concurrency: number;
  readonly #fetch: (url: string, init: RequestInit) => Promise<Response>;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #pending = new Set<Promise<void>>();
  readonly #waiting: (() => void)[] = [];
  #active = 0;

  constructor(sql: Sql, opts: AlertNotifierOptions = {}) {
    this.#sql = sql;
    this.#url = opts.url;
    this.#origin = opts.url ? safeOrigin(opts.url) : "";
    registerSecret(opts.url);
    this.#attempts = Math.max(1, opts.attempts ?? 3);
    this.#backoffMs = opts.backoffMs ?? 250;
    this.#timeoutMs = opts.timeoutMs ?? 3_000;
    this.#concurrency = Math.max(1, opts.concurrency ?? 4);
    this.#fetch = opts.fetch ?? ((url, init) => fetch(url, init));
    this.#sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  get enabled(): boolean {
    return this.#url !== undefined;
  }

  /** Starts delivering alert `alertId` in the background; null/undefined (deduplicated) is ignored. */
  notify(alertId: number | null | undefined): void {
    if (!this.#url || alertId === null || alertId === undefined) return;
    const p = this.#deliver(alertId).catch((e) =>
      log("error", "alert_delivery_failed", { alertId, error: this.#scrub(describe(e)) })
    ).finally(() => this.#pending.delete(p));
    this.#pending.add(p);
    (globalThis as EdgeRuntimeGlobal).EdgeRuntime?.waitUntil?.(p);
  }

  /** Resolves when every delivery started so far has finished (delivered or given up). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  async #deliver(alertId: number): Promise<void> {
    await this.#slot();
    try {
      const payload = await loadAlert(this.#sql, alertId);
      if (!payload) {
        log("warn", "alert_delivery_failed", { alertId, error: "alert row not found" });
        return;
      }
      const body = redact(JSON.stringify(payload));
      let last = "";
      let status: number | null = null;
      for (let attempt = 1; attempt <= this.#attempts; attempt++) {
        if (attempt > 1) await this.#sleep(this.#backoffMs * 2 ** (attempt - 2));
        let retryable = true;
        try {
          const res = await this.#fetch(this.#url!, {
            method: "POST",
            headers: { "content-type": "application/json", "user-agent": "hlf-dynamics-sync" },
            body,
            signal: AbortSignal.timeout(this.#timeoutMs),
          });
          await res.body?.cancel().catch(() => {});
          status = res.status;
          if (res.ok) {
            log("info", "alert_delivered", { alertId, kind: payload.kind, attempts: attempt });
            return;
          }
          last = `HTTP ${res.status}`;
          retryable = res.status >= 500 || res.status === 408 || res.status === 429;
        } catch (e) {
          status = null;
          last = this.#scrub(describe(e));
        }
        if (!retryable) {
          // The receiver refused the payload: another try would be refused too.
          this.#logFailure(alertId, payload.kind, attempt, status, last);
          return;
        }
      }
      this.#logFailure(alertId, payload.kind, this.#attempts, status, last);
    } finally {
      this.#release();
    }
  }

  #logFailure(
    alertId: number,
    kind: string,
    attempts: number,
    httpStatus: number | null,
    error: string,
  ): void {
    log("warn", "alert_delivery_failed", {
      alertId,
      kind,
      attempts,
      httpStatus,
      error,
      target: this.#origin,
    });
  }

  /** Error texts may quote the URL: keep only its origin. */
  #scrub(text: string): string {
    return this.#url ? text.split(this.#url).join(this.#origin + "/…") : text;
  }

  async #slot(): Promise<void> {
    while (this.#active >= this.#concurrency) {
      await new Promise<void>((r) => this.#waiting.push(r));
    }
    this.#active++;
  }

  #release(): void {
    this.#active--;
    this.#waiting.shift()?.();
  }
}

/** The webhook payload of one alert row, or undefined when it does not exist. */
export async function loadAlert(sql: Sql, alertId: number): Promise<AlertPayload | undefined> {
  const [row] = await sql<
    { id: string; kind: string; mentor_id: string | null; message: string; created_at: Date }[]
  >`select id, kind, mentor_id, message, created_at from public.sync_alerts where id = ${alertId}`;
  if (!row) return undefined;
  return {
    kind: row.kind,
    mentor_id: row.mentor_id,
    message: row.message,
    alert_id: Number(row.id),
    created_at: row.created_at.toISOString(),
  };
}

function safeOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return "(invalid URL)";
  }
}
