/**
 * Fault-injection scenarios: the types, a validator for untrusted input (control API, CLI) and
 * the pure decision of what a request meets.
 *
 * A scenario is set globally or per contact (per contact wins for requests addressed to that
 * contact). `times` limits a fault to the first n requests the scenario applies to in its scope;
 * afterwards requests succeed. `fail-twice-then-succeed` counts per contact (or per route for
 * requests that name no single contact), so with a global setting every contact fails twice.
 */

/** Which endpoint a scenario hits: the Dataverse API or the Azure AD token endpoint. */
export type FaultTarget = "api" | "token";

export type Scenario =
  | { kind: "always-success" }
  | { kind: "always-503"; retryAfterSeconds?: number; times?: number }
  | { kind: "fail-twice-then-succeed"; failures?: number; retryAfterSeconds?: number }
  | { kind: "429"; retryAfterSeconds?: number; times?: number }
  | { kind: "401"; times?: number }
  | { kind: "403"; times?: number }
  | { kind: "404"; times?: number }
  | { kind: "invalid_client"; times?: number }
  | { kind: "token-down"; retryAfterSeconds?: number; times?: number }
  | { kind: "slow"; delayMs?: number; target?: FaultTarget; times?: number }
  | { kind: "reset"; target?: FaultTarget; times?: number };

export type ScenarioKind = Scenario["kind"];

/** A scenario or just its kind (all parameters at their defaults). */
export type ScenarioInput = Scenario | ScenarioKind;

export const SCENARIO_KINDS: readonly ScenarioKind[] = [
  "always-success",
  "always-503",
  "fail-twice-then-succeed",
  "429",
  "401",
  "403",
  "404",
  "invalid_client",
  "token-down",
  "slow",
  "reset",
];

export const DEFAULT_RETRY_AFTER_SECONDS = 1;
export const DEFAULT_SLOW_DELAY_MS = 15_000;
export const DEFAULT_FAILURES = 2;

/** What one request meets. */
export type Fault =
  | { type: "none" }
  | { type: "status"; status: 401 | 403 | 404 | 429 | 503; retryAfterSeconds?: number }
  | { type: "invalid_client" }
  | { type: "token-down"; retryAfterSeconds: number }
  | { type: "delay"; ms: number }
  | { type: "reset" };

const NONE: Fault = { type: "none" };

export function isScenarioKind(value: unknown): value is ScenarioKind {
  return typeof value === "string" && (SCENARIO_KINDS as readonly string[]).includes(value);
}

export function normalizeScenario(input: ScenarioInput): Scenario {
  return parseScenario(input);
}

/** The endpoint a scenario applies to. */
export function scenarioTarget(s: Scenario): FaultTarget {
  switch (s.kind) {
    case "invalid_client":
    case "token-down":
      return "token";
    case "slow":
    case "reset":
      return s.target ?? "api";
    default:
      return "api";
  }
}

/** Whether the scenario keys its counter per contact (or route) rather than per scope. */
export function countsPerKey(s: Scenario): boolean {
  return s.kind === "fail-twice-then-succeed";
}

/**
 * The fault for the `ordinal`-th (1-based) request the scenario applies to in its counting
 * scope. Pure.
 */
export function faultFor(s: Scenario, ordinal: number): Fault {
  const within = (times: number | undefined) => times === undefined || ordinal <= times;
  switch (s.kind) {
    case "always-success":
      return NONE;
    case "always-503":
      return within(s.times)
        ? { type: "status", status: 503, retryAfterSeconds: s.retryAfterSeconds }
        : NONE;
    case "fail-twice-then-succeed":
      return ordinal <= (s.failures ?? DEFAULT_FAILURES)
        ? { type: "status", status: 503, retryAfterSeconds: s.retryAfterSeconds }
        : NONE;
    case "429":
      return within(s.times)
        ? {
          type: "status",
          status: 429,
          retryAfterSeconds: s.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS,
        }
        : NONE;
    case "401":
    case "403":
    case "404":
      return within(s.times) ? { type: "status", status: Number(s.kind) as 401 | 403 | 404 } : NONE;
    case "invalid_client":
      return within(s.times) ? { type: "invalid_client" } : NONE;
    case "token-down":
      return within(s.times)
        ? {
          type: "token-down",
          retryAfterSeconds: s.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_SECONDS,
        }
        : NONE;
    case "slow":
      return within(s.times) ? { type: "delay", ms: s.delayMs ?? DEFAULT_SLOW_DELAY_MS } : NONE;
    case "reset":
      return within(s.times) ? { type: "reset" } : NONE;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalCount(obj: Record<string, unknown>, key: string): number | undefined {
  const v = obj[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new Error(`scenario.${key} must be a non-negative integer`);
  }
  return v;
}

function optionalTarget(obj: Record<string, unknown>): FaultTarget | undefined {
  const v = obj.target;
  if (v === undefined) return undefined;
  if (v !== "api" && v !== "token") throw new Error(`scenario.target must be "api" or "token"`);
  return v;
}

const PARAMS: Record<ScenarioKind, readonly string[]> = {
  "always-success": [],
  "always-503": ["retryAfterSeconds", "times"],
  "fail-twice-then-succeed": ["failures", "retryAfterSeconds"],
  "429": ["retryAfterSeconds", "times"],
  "401": ["times"],
  "403": ["times"],
  "404": ["times"],
  "invalid_client": ["times"],
  "token-down": ["retryAfterSeconds", "times"],
  "slow": ["delayMs", "target", "times"],
  "reset": ["target", "times"],
};

/**
 * Validates untrusted input (a kind string or an object with `kind` and parameters) into a
 * Scenario; throws an Error naming the problem. Unknown parameters are rejected.
 */
export function parseScenario(value: unknown): Scenario {
  const obj = typeof value === "string" ? { kind: value } : value;
  if (!isRecord(obj)) throw new Error("scenario must be a kind string or an object with kind");
  const kind = obj.kind;
  if (!isScenarioKind(kind)) {
    throw new Error(`unknown scenario kind ${JSON.stringify(kind)}; one of ${SCENARIO_KINDS}`);
  }
  const allowed = PARAMS[kind];
  for (const key of Object.keys(obj)) {
    if (key !== "kind" && !allowed.includes(key)) {
      throw new Error(`scenario ${kind} takes no parameter ${JSON.stringify(key)}`);
    }
  }
  const out: Record<string, unknown> = { kind };
  for (const key of allowed) {
    const v = key === "target" ? optionalTarget(obj) : optionalCount(obj, key);
    if (v !== undefined) out[key] = v;
  }
  return out as Scenario;
}

interface Slot {
  scenario: Scenario;
  counts: Map<string, number>;
}

const SCOPE_KEY = "*";

function slot(scenario: Scenario): Slot {
  return { scenario, counts: new Map() };
}

/** Holds the global and per-contact scenarios and their counters. */
export class ScenarioBook {
  #global: Slot = slot({ kind: "always-success" });
  #perContact = new Map<string, Slot>();

  get global(): Scenario {
    return this.#global.scenario;
  }

  forContact(contactId: string): Scenario | undefined {
    return this.#perContact.get(contactId)?.scenario;
  }

  setGlobal(input: ScenarioInput): void {
    this.#global = slot(normalizeScenario(input));
  }

  /** Sets (or with null clears) a contact's own scenario. Token-endpoint scenarios are refused. */
  setForContact(contactId: string, input: ScenarioInput | null): void {
    if (input === null) {
      this.#perContact.delete(contactId);
      return;
    }
    const scenario = normalizeScenario(input);
    if (scenarioTarget(scenario) !== "api") {
      throw new Error(`scenario ${scenario.kind} targets the token endpoint, not a contact`);
    }
    this.#perContact.set(contactId, slot(scenario));
  }

  clear(): void {
    this.#global = slot({ kind: "always-success" });
    this.#perContact.clear();
  }

  /**
   * Decides (and counts) the fault for one request. `contactId` is set when the request
   * addresses one contact; `routeKey` identifies other requests for per-key counting.
   */
  next(target: FaultTarget, contactId: string | undefined, routeKey: string): Fault {
    const own = contactId === undefined ? undefined : this.#perContact.get(contactId);
    const chosen = target === "api" && own ? own : this.#global;
    if (scenarioTarget(chosen.scenario) !== target) return NONE;
    const key = countsPerKey(chosen.scenario) ? contactId ?? routeKey : SCOPE_KEY;
    const ordinal = (chosen.counts.get(key) ?? 0) + 1;
    chosen.counts.set(key, ordinal);
    return faultFor(chosen.scenario, ordinal);
  }
}
