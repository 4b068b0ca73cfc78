/**
 * A real HTTPS mock of Azure AD (client-credentials token endpoint) and the Dataverse Web API
 * v9.2 calls of the contract, on one Deno.serve TLS listener, with an in-memory portal, request
 * recording, concurrency tracking, fault-injection scenarios and a service-protection limiter.
 *
 * Routes: `POST /<tenant>/oauth2/v2.0/token`, everything under `/api/data/v9.2/`, and, when
 * `controlApi` is set, the test control API under `/__mock/` (never under the Dataverse paths,
 * never recorded).
 */

import { checkTokenRequest, newAccessToken, postOnly, tenantNotFound, tokenBody } from "./aad.ts";
import type { AadConfig } from "./aad.ts";
import { API_PREFIX, CODES, dataverseError, handleApi, parseApiPath } from "./dataverse_api.ts";
import type { ApiContext, ApiRoute, WhoAmI } from "./dataverse_api.ts";
import { CONTROL_PREFIX, createControlHandler } from "./control_api.ts";
import {
  aadError,
  invalidClientResponse,
  resetResponse,
  statusFaultResponse,
  throttledResponse,
  tokenDownResponse,
  unauthorizedResponse,
} from "./fault_responses.ts";
import type { FaultContext } from "./fault_responses.ts";
import { ServiceProtectionLimiter } from "./limiter.ts";
import type { LimiterConfig } from "./limiter.ts";
import { normalizeContactId, PortalState } from "./portal_state.ts";
import type { ContactRecord, ContactState } from "./portal_state.ts";
import { ScenarioBook } from "./scenarios.ts";
import type { Fault, FaultTarget, Scenario, ScenarioInput } from "./scenarios.ts";

export type { ContactRecord, ContactState } from "./portal_state.ts";
export type { LimiterConfig } from "./limiter.ts";
export type { Scenario, ScenarioInput, ScenarioKind } from "./scenarios.ts";

export const DEFAULT_TENANT_ID = "11111111-1111-4111-8111-111111111111";
export const DEFAULT_CLIENT_ID = "22222222-2222-4222-8222-222222222222";
export const DEFAULT_CLIENT_SECRET = "mock-client-secret-not-for-production";

export interface DynamicsMockOptions {
  certPem: string;
  keyPem: string;
  /** 0 (default) picks a free port. */
  port?: number;
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  /** Boolean contact column that lists a mentor on the portal (default `hlf_portalvisible`). */
  visibilityField?: string;
  /** `expires_in` of issued tokens (default 3599). */
  tokenLifetimeSeconds?: number;
  /** Added before every answer (token and API), default 0. */
  latencyMs?: number;
  limiter?: LimiterConfig | null;
  scenario?: ScenarioInput;
  /** Initial contacts: ids (not visible) or records. */
  contacts?: Iterable<string | { id: string; visible?: boolean }>;
  /** Mount the control API under `/__mock/` (main.ts does). Default false. */
  controlApi?: boolean;
  /** Keep at most this many recorded requests, dropping the oldest (default: all). */
  recordLimit?: number;
}

export type RequestKind = "token" | "api" | "other";

export interface RecordedRequest {
  /** 1-based arrival order. */
  seq: number;
  kind: RequestKind;
  method: string;
  /** URL path as received (not decoded). */
  path: string;
  url: string;
  /** Lower-cased header names, as received (Authorization included). */
  headers: Record<string, string>;
  body: string;
  /** Arrival time, epoch ms. */
  time: number;
  /** Lower-cased id when the request addresses one contact (`contacts(<id>)`). */
  contactId?: string;
  /** "pending" while being handled; "reset" when the mock dropped it without an answer. */
  outcome: "pending" | "answered" | "reset";
  status?: number;
  durationMs?: number;
}

export interface MockCounters {
  tokenRequests: number;
  tokensIssued: number;
  tokenRejections: number;
  apiRequests: number;
  patches: number;
  /** PATCHes that changed portal state (204/200). */
  patchesApplied: number;
  listRequests: number;
  whoAmIRequests: number;
  /** API requests refused for a missing, unknown or expired bearer token. */
  unauthorized: number;
  /** 429s from the service-protection limiter. */
  throttled: number;
  /** Requests that met a scenario fault (including delays and resets). */
  faultsInjected: number;
  resets: number;
  inFlight: number;
  maxConcurrent: number;
  maxConcurrentPerContact: number;
}

export interface DynamicsMock {
  /** Dataverse org URL, `https://127.0.0.1:PORT` (no trailing slash). */
  readonly baseUrl: string;
  /** `https://127.0.0.1:PORT/<tenant>/oauth2/v2.0/token` */
  readonly tokenUrl: string;
  readonly port: number;
  readonly tenantId: string;
  readonly clientId: string;
  readonly visibilityField: string;
  /** `{baseUrl}/.default` */
  readonly scope: string;
  readonly whoAmI: WhoAmI;
  /** Live list of every recorded request (token, API and stray), arrival order. */
  readonly requests: readonly RecordedRequest[];
  /** Most API requests in flight at once. */
  readonly maxConcurrent: number;
  /** Most requests addressing one contact (PATCH/GET contacts(<id>)) in flight at once. */
  readonly maxConcurrentPerContact: number;
  counters(): MockCounters;
  addContact(id: string, visible?: boolean): void;
  removeContact(id: string): boolean;
  clearContacts(): void;
  contact(id: string): ContactState | undefined;
  contacts(): ContactRecord[];
  /** Rotates the secret: the old one is refused from now on; issued tokens stay valid. */
  setClientSecret(secret: string): void;
  setScenario(s: ScenarioInput): void;
  /** Per-contact scenario (wins over the global one); null clears it. */
  setContactScenario(contactId: string, s: ScenarioInput | null): void;
  scenario(): Scenario;
  contactScenario(contactId: string): Scenario | undefined;
  setLimiter(config: LimiterConfig | null): void;
  setLatencyMs(ms: number): void;
  setTokenLifetimeSeconds(seconds: number): void;
  /** Makes every token issued so far expired (the API answers 401 invalid_token). */
  expireTokens(): void;
  clearRequests(): void;
  /** Clears requests and counters; scenarios, limiter and latency back to the start options. */
  reset(): void;
  close(): Promise<void>;
}

interface IssuedToken {
  expiresAt: number;
}

/** Sleeps `ms`, ending early (without error) when any of `signals` aborts. */
function sleep(ms: number, signals: readonly AbortSignal[]): Promise<void> {
  if (ms <= 0 || signals.some((s) => s.aborted)) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    for (const s of signals) s.addEventListener("abort", done);
  });
}

const TOKEN_PATH = /^\/([^/]+)\/oauth2\/v2\.0\/token$/;

function emptyCounters(): MockCounters {
  return {
    tokenRequests: 0,
    tokensIssued: 0,
    tokenRejections: 0,
    apiRequests: 0,
    patches: 0,
    patchesApplied: 0,
    listRequests: 0,
    whoAmIRequests: 0,
    unauthorized: 0,
    throttled: 0,
    faultsInjected: 0,
    resets: 0,
    inFlight: 0,
    maxConcurrent: 0,
    maxConcurrentPerContact: 0,
  };
}

function bearerToken(header: string | null): string | undefined {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  return m?.[1];
}

function nonNegative(n: number, name: string): number {
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number`);
  return n;
}

class DynamicsMockServer implements DynamicsMock {
  readonly baseUrl: string;
  readonly tokenUrl: string;
  readonly port: number;
  readonly tenantId: string;
  readonly clientId: string;
  readonly visibilityField: string;
  readonly scope: string;
  readonly whoAmI: WhoAmI = {
    BusinessUnitId: crypto.randomUUID(),
    UserId: crypto.randomUUID(),
    OrganizationId: crypto.randomUUID(),
  };

  readonly #opts: DynamicsMockOptions;
  readonly #state = new PortalState();
  readonly #scenarios = new ScenarioBook();
  readonly #tokens = new Map<string, IssuedToken>();
  readonly #requests: RecordedRequest[] = [];
  readonly #perContactInFlight = new Map<string, number>();
  readonly #closing = new AbortController();
  #counters = emptyCounters();
  #limiter: ServiceProtectionLimiter | null = null;
  #latencyMs = 0;
  #tokenLifetimeSeconds: number;
  #clientSecret: string;
  #seq = 0;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #control: ((req: Request, url: URL) => Promise<Response>) | undefined;

  constructor(opts: DynamicsMockOptions, port: number) {
    this.#opts = opts;
    this.port = port;
    this.baseUrl = `https://127.0.0.1:${port}`;
    this.tenantId = opts.tenantId ?? DEFAULT_TENANT_ID;
    this.clientId = opts.clientId ?? DEFAULT_CLIENT_ID;
    this.#clientSecret = opts.clientSecret ?? DEFAULT_CLIENT_SECRET;
    this.visibilityField = opts.visibilityField ?? "hlf_portalvisible";
    this.tokenUrl = `${this.baseUrl}/${this.tenantId}/oauth2/v2.0/token`;
    this.scope = `${this.baseUrl}/.default`;
    this.#tokenLifetimeSeconds = opts.tokenLifetimeSeconds ?? 3599;
    this.#applyStartOptions();
    for (const c of opts.contacts ?? []) {
      if (typeof c === "string") this.addContact(c);
      else this.addContact(c.id, c.visible ?? false);
    }
    if (opts.controlApi) this.#control = createControlHandler(this);
  }

  attach(server: Deno.HttpServer<Deno.NetAddr>): void {
    this.#server = server;
  }

  #applyStartOptions(): void {
    this.#scenarios.clear();
    if (this.#opts.scenario !== undefined) this.#scenarios.setGlobal(this.#opts.scenario);
    this.setLimiter(this.#opts.limiter ?? null);
    this.setLatencyMs(this.#opts.latencyMs ?? 0);
  }

  // ---- portal state and steering -------------------------------------------------------

  get requests(): readonly RecordedRequest[] {
    return this.#requests;
  }
  get maxConcurrent(): number {
    return this.#counters.maxConcurrent;
  }
  get maxConcurrentPerContact(): number {
    return this.#counters.maxConcurrentPerContact;
  }
  counters(): MockCounters {
    return { ...this.#counters };
  }
  addContact(id: string, visible = false): void {
    this.#state.add(id, visible);
  }
  removeContact(id: string): boolean {
    return this.#state.remove(id);
  }
  clearContacts(): void {
    this.#state.clear();
  }
  contact(id: string): ContactState | undefined {
    return this.#state.get(id);
  }
  contacts(): ContactRecord[] {
    return this.#state.list();
  }
  setClientSecret(secret: string): void {
    if (secret === "") throw new Error("client secret must not be empty");
    this.#clientSecret = secret;
  }
  setScenario(s: ScenarioInput): void {
    this.#scenarios.setGlobal(s);
  }
  setContactScenario(contactId: string, s: ScenarioInput | null): void {
    this.#scenarios.setForContact(normalizeContactId(contactId), s);
  }
  scenario(): Scenario {
    return this.#scenarios.global;
  }
  contactScenario(contactId: string): Scenario | undefined {
    return this.#scenarios.forContact(normalizeContactId(contactId));
  }
  setLimiter(config: LimiterConfig | null): void {
    this.#limiter = config === null ? null : new ServiceProtectionLimiter(config);
  }
  setLatencyMs(ms: number): void {
    this.#latencyMs = nonNegative(ms, "latencyMs");
  }
  setTokenLifetimeSeconds(seconds: number): void {
    this.#tokenLifetimeSeconds = nonNegative(seconds, "tokenLifetimeSeconds");
  }
  expireTokens(): void {
    const past = Date.now() - 1;
    for (const t of this.#tokens.values()) t.expiresAt = past;
  }
  clearRequests(): void {
    this.#requests.length = 0;
  }
  reset(): void {
    this.clearRequests();
    const inFlight = this.#counters.inFlight;
    this.#counters = { ...emptyCounters(), inFlight };
    this.#applyStartOptions();
  }
  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    await this.#server?.shutdown();
  }

  // ---- request handling -----------------------------------------------------------------

  #faultContext(): FaultContext {
    return {
      tenantId: this.tenantId,
      clientId: this.clientId,
      baseUrl: this.baseUrl,
      whoAmI: this.whoAmI,
    };
  }

  #apiContext(): ApiContext {
    return {
      baseUrl: this.baseUrl,
      visibilityField: this.visibilityField,
      state: this.#state,
      whoAmI: this.whoAmI,
    };
  }

  #record(req: Request, url: URL, body: string, kind: RequestKind, contactId?: string) {
    const rec: RecordedRequest = {
      seq: ++this.#seq,
      kind,
      method: req.method,
      path: url.pathname,
      url: url.href,
      headers: Object.fromEntries(req.headers),
      body,
      time: Date.now(),
      outcome: "pending",
    };
    if (contactId !== undefined) rec.contactId = contactId;
    this.#requests.push(rec);
    const limit = this.#opts.recordLimit ?? Infinity;
    if (this.#requests.length > limit) this.#requests.splice(0, this.#requests.length - limit);
    return rec;
  }

  async handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    if (this.#control && url.pathname.startsWith(CONTROL_PREFIX)) return this.#control(req, url);
    const body = await req.text();
    const route = parseApiPath(url.pathname);
    const tenant = TOKEN_PATH.exec(url.pathname)?.[1];
    const kind: RequestKind = route ? "api" : tenant !== undefined ? "token" : "other";
    const contactId = route?.kind === "contact" ? route.id : undefined;
    const rec = this.#record(req, url, body, kind, contactId);
    const signal = [req.signal, this.#closing.signal];
    const started = performance.now();
    let res: Response;
    if (route) res = await this.#api(req, url, body, route, contactId, signal);
    else if (tenant !== undefined) res = await this.#token(req, body, tenant, signal);
    else {
      res = dataverseError(
        404,
        CODES.syntax,
        `Resource not found for the segment '${url.pathname}'.`,
      );
    }
    rec.durationMs = performance.now() - started;
    if (this.#isReset(res)) {
      rec.outcome = "reset";
      this.#counters.resets++;
    } else {
      rec.outcome = "answered";
      rec.status = res.status;
    }
    return res;
  }

  readonly #resetResponses = new WeakSet<Response>();

  #reset(): Response {
    const res = resetResponse();
    this.#resetResponses.add(res);
    return res;
  }

  #isReset(res: Response): boolean {
    return this.#resetResponses.has(res);
  }

  /** Applies a delay/reset fault; returns a Response when the fault ends the request. */
  async #commonFault(fault: Fault, signal: readonly AbortSignal[]): Promise<Response | undefined> {
    if (fault.type === "none") return undefined;
    this.#counters.faultsInjected++;
    if (fault.type === "delay") {
      await sleep(fault.ms, signal);
      return undefined;
    }
    if (fault.type === "reset") return this.#reset();
    return undefined;
  }

  #nextFault(target: FaultTarget, contactId: string | undefined, routeKey: string): Fault {
    return this.#scenarios.next(target, contactId, routeKey);
  }

  async #token(req: Request, body: string, tenant: string, signal: readonly AbortSignal[]) {
    this.#counters.tokenRequests++;
    await sleep(this.#latencyMs, signal);
    const fault = this.#nextFault("token", undefined, "token");
    const ended = await this.#commonFault(fault, signal);
    if (ended) return ended;
    let res: Response;
    if (fault.type === "invalid_client") res = invalidClientResponse(this.clientId);
    else if (fault.type === "token-down") res = tokenDownResponse(fault.retryAfterSeconds);
    else res = this.#issueToken(req, body, tenant);
    if (res.status !== 200) this.#counters.tokenRejections++;
    return res;
  }

  #aadConfig(): AadConfig {
    return {
      tenantId: this.tenantId,
      clientId: this.clientId,
      clientSecret: this.#clientSecret,
      resourceOrigins: [this.baseUrl, `https://localhost:${this.port}`],
    };
  }

  #issueToken(req: Request, body: string, tenant: string): Response {
    const check = req.method !== "POST"
      ? postOnly(req.method)
      : tenant !== this.tenantId
      ? tenantNotFound(tenant)
      : checkTokenRequest(req.headers.get("Content-Type"), body, this.#aadConfig());
    if (!check.ok) return aadError(check.status, check.error, check.code, check.description);
    const token = newAccessToken();
    const lifetime = this.#tokenLifetimeSeconds;
    this.#tokens.set(token, { expiresAt: Date.now() + lifetime * 1000 });
    this.#counters.tokensIssued++;
    return new Response(JSON.stringify(tokenBody(token, lifetime)), {
      status: 200,
      headers: { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" },
    });
  }

  /** Undefined when the bearer token is valid, else the 401 answer. */
  #authorize(req: Request): Response | undefined {
    const token = bearerToken(req.headers.get("Authorization"));
    const issued = token === undefined ? undefined : this.#tokens.get(token);
    const problem = token === undefined
      ? "Bearer token is missing."
      : issued === undefined
      ? "The access token is invalid."
      : issued.expiresAt <= Date.now()
      ? "The access token has expired."
      : undefined;
    if (problem === undefined) return undefined;
    this.#counters.unauthorized++;
    return unauthorizedResponse(this.#faultContext(), problem);
  }

  #enter(contactId: string | undefined): void {
    const c = this.#counters;
    c.inFlight++;
    c.maxConcurrent = Math.max(c.maxConcurrent, c.inFlight);
    if (contactId === undefined) return;
    const n = (this.#perContactInFlight.get(contactId) ?? 0) + 1;
    this.#perContactInFlight.set(contactId, n);
    c.maxConcurrentPerContact = Math.max(c.maxConcurrentPerContact, n);
  }

  #leave(contactId: string | undefined): void {
    this.#counters.inFlight--;
    if (contactId === undefined) return;
    const n = (this.#perContactInFlight.get(contactId) ?? 1) - 1;
    if (n === 0) this.#perContactInFlight.delete(contactId);
    else this.#perContactInFlight.set(contactId, n);
  }

  #countApi(req: Request, route: ApiRoute): void {
    const c = this.#counters;
    c.apiRequests++;
    if (route.kind === "contact" && req.method === "PATCH") c.patches++;
    if (route.kind === "contacts" && req.method === "GET") c.listRequests++;
    if (route.kind === "whoami") c.whoAmIRequests++;
  }

  async #api(
    req: Request,
    url: URL,
    body: string,
    route: ApiRoute,
    contactId: string | undefined,
    signal: readonly AbortSignal[],
  ): Promise<Response> {
    this.#countApi(req, route);
    const othersInFlight = this.#counters.inFlight;
    this.#enter(contactId);
    try {
      await sleep(this.#latencyMs, signal);
      const denied = this.#authorize(req);
      if (denied) return denied;
      const verdict = this.#limiter?.admit(othersInFlight) ?? { ok: true };
      if (!verdict.ok) {
        this.#counters.throttled++;
        return throttledResponse(verdict.retryAfterSeconds, verdict.code, verdict.message);
      }
      const fault = this.#nextFault("api", contactId, `${req.method} ${url.pathname}`);
      const ended = await this.#commonFault(fault, signal);
      if (ended) return ended;
      if (fault.type === "status") {
        return statusFaultResponse(
          fault.status,
          fault.retryAfterSeconds,
          contactId,
          this.#faultContext(),
        );
      }
      const res = handleApi(
        route,
        { method: req.method, url, headers: req.headers, body },
        this.#apiContext(),
      );
      if (route.kind === "contact" && req.method === "PATCH" && res.ok) {
        this.#counters.patchesApplied++;
      }
      return res;
    } finally {
      this.#leave(contactId);
    }
  }
}

/** Starts the mock on 127.0.0.1 with TLS; resolves once it listens. */
export async function startDynamicsMock(opts: DynamicsMockOptions): Promise<DynamicsMock> {
  let mock: DynamicsMockServer | undefined;
  const listening = Promise.withResolvers<number>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: opts.port ?? 0,
    cert: opts.certPem,
    key: opts.keyPem,
    onListen: ({ port }) => listening.resolve(port),
    onError: (err) => {
      // Never a stack trace to the client; the mock's own bugs surface in its stderr.
      console.error("dynamics mock: handler error:", err);
      return dataverseError(500, "0x80040216", "An unexpected error occurred.");
    },
  }, (req) => {
    if (!mock) return dataverseError(503, CODES.unavailable, "Mock is starting.");
    return mock.handle(req);
  });
  const port = await listening.promise;
  try {
    mock = new DynamicsMockServer(opts, port);
  } catch (e) {
    await server.shutdown();
    throw e;
  }
  mock.attach(server);
  return mock;
}

export { API_PREFIX };
