/**
 * Control API for tests that run the function as a separate process and steer the mock over
 * HTTPS. Mounted only when `controlApi` is set, under `/__mock/` (outside the Dataverse and
 * token paths); its own requests are not recorded. Errors: `{"error": "<message>"}`.
 *
 *   GET  /__mock/requests[?since=SEQ]   recorded requests (seq > SEQ)
 *   GET  /__mock/contacts               [{id, visible, version}]
 *   GET  /__mock/stats                  {counters, scenario, perContactScenarios, contacts}
 *   POST /__mock/scenario               {scenario: ScenarioInput|null, contactId?}
 *   POST /__mock/limiter                {limiter: {requests, windowMs, concurrent?}|null}
 *   POST /__mock/settings               {latencyMs?, tokenLifetimeSeconds?, clientSecret?, expireTokens?}
 *   POST /__mock/contacts               {contacts: [id | {id, visible?}], replace?, remove?: [id]}
 *   POST /__mock/reset                  requests and counters cleared, scenarios back to start
 */

import type { DynamicsMock } from "./dynamics_mock.ts";
import { parseLimiterConfig } from "./limiter.ts";
import { parseScenario } from "./scenarios.ts";

export const CONTROL_PREFIX = "/__mock/";

type Json = Record<string, unknown>;

class BadRequest extends Error {}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/json" },
  });
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function readObject(req: Request): Promise<Json> {
  const text = await req.text();
  let value: unknown;
  try {
    value = text === "" ? {} : JSON.parse(text);
  } catch {
    throw new BadRequest("body is not JSON");
  }
  if (!isObject(value)) throw new BadRequest("body must be a JSON object");
  return value;
}

function contactEntry(v: unknown): { id: string; visible: boolean } {
  if (typeof v === "string") return { id: v, visible: false };
  if (
    isObject(v) && typeof v.id === "string" &&
    (v.visible === undefined || typeof v.visible === "boolean")
  ) {
    return { id: v.id, visible: v.visible ?? false };
  }
  throw new BadRequest("contacts entries must be an id or {id, visible?: boolean}");
}

function stringList(v: unknown, name: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x) => typeof x === "string")) {
    throw new BadRequest(`${name} must be an array of ids`);
  }
  return v;
}

function optionalNumber(body: Json, key: string): number | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (typeof v !== "number") throw new BadRequest(`${key} must be a number`);
  return v;
}

function postScenario(mock: DynamicsMock, body: Json): Response {
  if (!("scenario" in body)) throw new BadRequest("missing scenario");
  const scenario = body.scenario === null ? null : parseScenario(body.scenario);
  if (body.contactId !== undefined) {
    if (typeof body.contactId !== "string") throw new BadRequest("contactId must be a string");
    mock.setContactScenario(body.contactId, scenario);
    return json(200, { contactId: body.contactId.toLowerCase(), scenario });
  }
  mock.setScenario(scenario ?? "always-success");
  return json(200, { scenario: mock.scenario() });
}

function postLimiter(mock: DynamicsMock, body: Json): Response {
  if (!("limiter" in body)) throw new BadRequest("missing limiter");
  const limiter = body.limiter === null ? null : parseLimiterConfig(body.limiter);
  mock.setLimiter(limiter);
  return json(200, { limiter });
}

function postSettings(mock: DynamicsMock, body: Json): Response {
  const latencyMs = optionalNumber(body, "latencyMs");
  const lifetime = optionalNumber(body, "tokenLifetimeSeconds");
  if (body.clientSecret !== undefined && typeof body.clientSecret !== "string") {
    throw new BadRequest("clientSecret must be a string");
  }
  if (latencyMs !== undefined) mock.setLatencyMs(latencyMs);
  if (lifetime !== undefined) mock.setTokenLifetimeSeconds(lifetime);
  if (typeof body.clientSecret === "string") mock.setClientSecret(body.clientSecret);
  if (body.expireTokens === true) mock.expireTokens();
  return json(200, { ok: true });
}

function postContacts(mock: DynamicsMock, body: Json): Response {
  const entries = body.contacts === undefined ? [] : body.contacts;
  if (!Array.isArray(entries)) throw new BadRequest("contacts must be an array");
  const parsed = entries.map(contactEntry);
  const remove = stringList(body.remove, "remove");
  if (body.replace === true) mock.clearContacts();
  for (const c of parsed) mock.addContact(c.id, c.visible);
  for (const id of remove) mock.removeContact(id);
  return json(200, { count: mock.contacts().length });
}

function stats(mock: DynamicsMock): Response {
  const perContactScenarios: Record<string, unknown> = {};
  for (const c of mock.contacts()) {
    const s = mock.contactScenario(c.id);
    if (s) perContactScenarios[c.id] = s;
  }
  return json(200, {
    counters: mock.counters(),
    scenario: mock.scenario(),
    perContactScenarios,
    contacts: mock.contacts().length,
  });
}

function requestsSince(mock: DynamicsMock, url: URL): Response {
  const since = Number(url.searchParams.get("since") ?? "0");
  if (!Number.isInteger(since) || since < 0) throw new BadRequest("since must be an integer");
  return json(200, mock.requests.filter((r) => r.seq > since));
}

type Route = (mock: DynamicsMock, req: Request, url: URL) => Response | Promise<Response>;

const ROUTES: Record<string, Route> = {
  "GET requests": (m, _r, url) => requestsSince(m, url),
  "GET contacts": (m) => json(200, m.contacts()),
  "GET stats": (m) => stats(m),
  "POST scenario": async (m, r) => postScenario(m, await readObject(r)),
  "POST limiter": async (m, r) => postLimiter(m, await readObject(r)),
  "POST settings": async (m, r) => postSettings(m, await readObject(r)),
  "POST contacts": async (m, r) => postContacts(m, await readObject(r)),
  "POST reset": async (m, r) => {
    await r.body?.cancel();
    m.reset();
    return new Response(null, { status: 204 });
  },
};

/** The `/__mock/` handler for one mock instance. */
export function createControlHandler(
  mock: DynamicsMock,
): (req: Request, url: URL) => Promise<Response> {
  return async (req, url) => {
    const name = url.pathname.slice(CONTROL_PREFIX.length);
    const route = ROUTES[`${req.method} ${name}`];
    if (!route) {
      await req.body?.cancel();
      const known = Object.keys(ROUTES).some((k) => k.endsWith(` ${name}`));
      return json(known ? 405 : 404, { error: `no control route ${req.method} ${url.pathname}` });
    }
    try {
      return await route(mock, req, url);
    } catch (e) {
      // BadRequest and the validators' errors (scenario, limiter, contact id) are the caller's.
      if (e instanceof Error) return json(400, { error: e.message });
      throw e;
    }
  };
}
