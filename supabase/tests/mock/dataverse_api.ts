/**
 * The Dataverse Web API v9.2 surface the sync calls, answered from PortalState:
 * PATCH/GET contacts(<id>), GET contacts?$select&$filter (paged by Prefer: odata.maxpagesize),
 * GET WhoAmI. Errors use Dataverse's `{"error":{"code","message"}}` body. Pure functions of the
 * request and the state (the state is mutated by a successful PATCH only).
 */

import { checkFilter, evaluateFilter, FilterError, isGuid, parseFilter } from "./odata_filter.ts";
import type { FilterExpr, FilterSchema } from "./odata_filter.ts";
import type { ContactRecord, PortalState } from "./portal_state.ts";

export const API_PREFIX = "/api/data/v9.2/";
export const MAX_PAGE_SIZE = 5000;

/** Dataverse error codes the mock uses. */
export const CODES = {
  syntax: "0x80060888",
  payload: "0x80048d19",
  notFound: "0x80040217",
  versionMismatch: "0x80060882",
  accessDenied: "0x80040220",
  unauthorized: "0x80072560",
  unavailable: "0x80040216",
} as const;

export interface ApiRequest {
  method: string;
  url: URL;
  headers: Headers;
  body: string;
}

export interface WhoAmI {
  BusinessUnitId: string;
  UserId: string;
  OrganizationId: string;
}

export interface ApiContext {
  baseUrl: string;
  visibilityField: string;
  state: PortalState;
  whoAmI: WhoAmI;
}

export type ApiRoute =
  | { kind: "contact"; id: string }
  | { kind: "bad-key"; raw: string }
  | { kind: "contacts" }
  | { kind: "whoami" }
  | { kind: "unknown"; segment: string };

/** Parses a path under the API prefix; undefined for paths outside the Web API. */
export function parseApiPath(pathname: string): ApiRoute | undefined {
  let path: string;
  try {
    path = decodeURIComponent(pathname);
  } catch {
    path = pathname;
  }
  if (!path.startsWith(API_PREFIX)) return undefined;
  const rest = path.slice(API_PREFIX.length);
  if (rest === "contacts") return { kind: "contacts" };
  if (rest === "WhoAmI" || rest === "WhoAmI()") return { kind: "whoami" };
  const key = /^contacts\((.*)\)$/.exec(rest);
  if (key) {
    return isGuid(key[1])
      ? { kind: "contact", id: key[1].toLowerCase() }
      : { kind: "bad-key", raw: key[1] };
  }
  return { kind: "unknown", segment: rest.split("/")[0] };
}

/** Headers every Dataverse answer carries. */
export function dataverseHeaders(extra: HeadersInit = {}): Headers {
  const h = new Headers(extra);
  h.set("OData-Version", "4.0");
  h.set("REQ_ID", crypto.randomUUID());
  return h;
}

export function jsonResponse(status: number, body: unknown, headers: HeadersInit = {}): Response {
  const h = dataverseHeaders(headers);
  h.set("Content-Type", "application/json; odata.metadata=minimal");
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** A Dataverse error answer: `{"error":{"code","message"}}`. */
export function dataverseError(
  status: number,
  code: string,
  message: string,
  headers: HeadersInit = {},
): Response {
  return jsonResponse(status, { error: { code, message } }, headers);
}

export function notFoundContact(id: string): Response {
  return dataverseError(404, CODES.notFound, `contact With Id = ${id} Does Not Exist`);
}

function methodNotAllowed(method: string, allow: string): Response {
  return dataverseError(
    405,
    CODES.syntax,
    `The requested resource does not support http method '${method}'.`,
    { Allow: allow },
  );
}

function unknownProperty(name: string): Response {
  return dataverseError(
    400,
    CODES.syntax,
    `Could not find a property named '${name}' on type 'Microsoft.Dynamics.CRM.contact'.`,
  );
}

function schemaOf(ctx: ApiContext): FilterSchema {
  return { contactid: "guid", [ctx.visibilityField]: "bool" };
}

/** Parses `Prefer`: `odata.maxpagesize=N` (capped at 5000) and `return=representation`. */
export function parsePrefer(header: string | null): {
  maxPageSize?: number;
  returnRepresentation: boolean;
} {
  const prefs = (header ?? "").split(",").map((p) => p.trim()).filter((p) => p !== "");
  let maxPageSize: number | undefined;
  let returnRepresentation = false;
  for (const p of prefs) {
    const m = /^odata\.maxpagesize\s*=\s*"?(\d+)"?$/i.exec(p);
    if (m && Number(m[1]) > 0) maxPageSize = Math.min(Number(m[1]), MAX_PAGE_SIZE);
    if (/^return\s*=\s*representation$/i.test(p)) returnRepresentation = true;
  }
  return { maxPageSize, returnRepresentation };
}

function etag(version: number): string {
  return `W/"${version}"`;
}

function entityUrl(ctx: ApiContext, id: string): string {
  return `${ctx.baseUrl}${API_PREFIX}contacts(${id})`;
}

function contextUrl(ctx: ApiContext, columns: readonly string[], entity = false): string {
  return `${ctx.baseUrl}${API_PREFIX}$metadata#contacts(${columns.join(",")})${
    entity ? "/$entity" : ""
  }`;
}

function projectRow(c: ContactRecord, columns: readonly string[]): Record<string, unknown> {
  // Dataverse always returns the primary key, selected or not.
  const row: Record<string, unknown> = { "@odata.etag": etag(c.version), contactid: c.id };
  for (const col of columns) if (col !== "contactid") row[col] = c.visible;
  return row;
}

/** Parses `$select`; all known columns when absent. Response on an unknown column. */
function parseSelect(ctx: ApiContext, raw: string | null): string[] | Response {
  const known = ["contactid", ctx.visibilityField];
  if (raw === null) return known;
  const columns = raw.split(",").map((c) => c.trim());
  const bad = columns.find((c) => !known.includes(c));
  return bad === undefined ? columns : unknownProperty(bad);
}

function headerProblem(req: ApiRequest): string | undefined {
  const type = req.headers.get("Content-Type") ?? "";
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    return `Content-Type must be application/json, got '${type}'.`;
  }
  for (const name of ["OData-MaxVersion", "OData-Version"]) {
    if (req.headers.get(name) !== "4.0") {
      return `Header ${name}: 4.0 is required, got '${req.headers.get(name) ?? ""}'.`;
    }
  }
  if (req.headers.get("If-Match") === null) {
    return "If-Match is required: without it a PATCH is an upsert and may create a contact.";
  }
  return undefined;
}

function payloadError(cause: string): Response {
  return dataverseError(
    400,
    CODES.payload,
    `Error identified in Payload provided by the user for Entity :'contacts', Cause: ${cause}`,
  );
}

/** Validates the PATCH body; the new visibility or an error answer. */
function parseVisibilityBody(body: string, field: string): boolean | Response {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return payloadError("Microsoft.OData.ODataException: Invalid JSON. The body is not JSON.");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return payloadError("Microsoft.OData.ODataException: The payload must be a JSON object.");
  }
  const record = value as Record<string, unknown>;
  const extra = Object.keys(record).find((k) => k !== field);
  if (extra !== undefined) {
    return dataverseError(
      400,
      CODES.syntax,
      `The property '${extra}' does not exist on type 'Microsoft.Dynamics.CRM.contact'. Make ` +
        "sure to only use property names that are defined by the type.",
    );
  }
  const v = record[field];
  if (typeof v !== "boolean") {
    return payloadError(
      v === undefined
        ? `The payload does not set '${field}'.`
        : `Cannot convert the literal '${JSON.stringify(v)}' to the expected type 'Edm.Boolean'.`,
    );
  }
  return v;
}

export function patchContact(req: ApiRequest, id: string, ctx: ApiContext): Response {
  const problem = headerProblem(req);
  if (problem) return dataverseError(400, CODES.syntax, problem);
  const visible = parseVisibilityBody(req.body, ctx.visibilityField);
  if (visible instanceof Response) return visible;
  const current = ctx.state.get(id);
  if (!current) return notFoundContact(id);
  const ifMatch = req.headers.get("If-Match") ?? "";
  if (ifMatch !== "*" && ifMatch !== etag(current.version)) {
    return dataverseError(
      412,
      CODES.versionMismatch,
      "The version of the existing record doesn't match the RowVersion property provided.",
    );
  }
  const updated = ctx.state.setVisible(id, visible);
  if (!updated) return notFoundContact(id);
  const headers = { "OData-EntityId": entityUrl(ctx, id), "ETag": etag(updated.version) };
  if (parsePrefer(req.headers.get("Prefer")).returnRepresentation) {
    const columns = ["contactid", ctx.visibilityField];
    return jsonResponse(200, {
      "@odata.context": contextUrl(ctx, columns, true),
      ...projectRow({ id, ...updated }, columns),
    }, headers);
  }
  return new Response(null, { status: 204, headers: dataverseHeaders(headers) });
}

export function getContact(req: ApiRequest, id: string, ctx: ApiContext): Response {
  const columns = parseSelect(ctx, req.url.searchParams.get("$select"));
  if (columns instanceof Response) return columns;
  const c = ctx.state.get(id);
  if (!c) return notFoundContact(id);
  return jsonResponse(200, {
    "@odata.context": contextUrl(ctx, columns, true),
    ...projectRow({ id, ...c }, columns),
  });
}

const SUPPORTED_OPTIONS = ["$select", "$filter", "$skiptoken"];

/** `<cookie pagenumber="N" pagingcookie="<last id>" istracking="False" />` */
export function makeSkipToken(page: number, lastId: string): string {
  return `<cookie pagenumber="${page}" pagingcookie="${lastId}" istracking="False" />`;
}

export function parseSkipToken(token: string): { page: number; lastId: string } | undefined {
  const m = /^<cookie pagenumber="(\d+)" pagingcookie="([0-9a-f-]{36})" istracking="False" \/>$/i
    .exec(token);
  return m ? { page: Number(m[1]), lastId: m[2].toLowerCase() } : undefined;
}

function nextLink(req: ApiRequest, ctx: ApiContext, token: string): string {
  const parts: string[] = [];
  for (const [k, v] of req.url.searchParams) {
    if (k !== "$skiptoken") parts.push(`${k}=${encodeURIComponent(v)}`);
  }
  parts.push(`$skiptoken=${encodeURIComponent(token)}`);
  return `${ctx.baseUrl}${API_PREFIX}contacts?${parts.join("&")}`;
}

function parseListFilter(raw: string | null, schema: FilterSchema): FilterExpr | Response | null {
  if (raw === null) return null;
  try {
    const expr = parseFilter(raw);
    checkFilter(expr, schema);
    return expr;
  } catch (e) {
    if (e instanceof FilterError) return dataverseError(400, CODES.syntax, e.message);
    throw e;
  }
}

export function listContacts(req: ApiRequest, ctx: ApiContext): Response {
  const params = req.url.searchParams;
  const unsupported = [...params.keys()].find((k) =>
    k.startsWith("$") && !SUPPORTED_OPTIONS.includes(k)
  );
  if (unsupported) {
    return dataverseError(
      400,
      CODES.syntax,
      `The query option '${unsupported}' is not supported by this mock.`,
    );
  }
  const columns = parseSelect(ctx, params.get("$select"));
  if (columns instanceof Response) return columns;
  const filter = parseListFilter(params.get("$filter"), schemaOf(ctx));
  if (filter instanceof Response) return filter;
  const rawToken = params.get("$skiptoken");
  const token = rawToken === null ? undefined : parseSkipToken(rawToken);
  if (rawToken !== null && !token) {
    return dataverseError(400, CODES.syntax, "The $skiptoken is not valid.");
  }
  const { maxPageSize } = parsePrefer(req.headers.get("Prefer"));
  const pageSize = maxPageSize ?? MAX_PAGE_SIZE;
  const matching = ctx.state.list().filter((c) =>
    (!token || c.id > token.lastId) &&
    (!filter || evaluateFilter(filter, { contactid: c.id, [ctx.visibilityField]: c.visible }))
  );
  const page = matching.slice(0, pageSize);
  const body: Record<string, unknown> = {
    "@odata.context": contextUrl(ctx, columns),
    value: page.map((c) => projectRow(c, columns)),
  };
  if (matching.length > pageSize) {
    const last = page[page.length - 1].id;
    body["@odata.nextLink"] = nextLink(req, ctx, makeSkipToken((token?.page ?? 1) + 1, last));
  }
  const headers: Record<string, string> = {};
  if (maxPageSize !== undefined) headers["Preference-Applied"] = `odata.maxpagesize=${maxPageSize}`;
  return jsonResponse(200, body, headers);
}

export function whoAmI(ctx: ApiContext): Response {
  return jsonResponse(200, {
    "@odata.context": `${ctx.baseUrl}${API_PREFIX}$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse`,
    ...ctx.whoAmI,
  });
}

/** Answers an authorised, unthrottled, fault-free API request. */
export function handleApi(route: ApiRoute, req: ApiRequest, ctx: ApiContext): Response {
  switch (route.kind) {
    case "contact":
      if (req.method === "PATCH") return patchContact(req, route.id, ctx);
      if (req.method === "GET") return getContact(req, route.id, ctx);
      return methodNotAllowed(req.method, "GET, PATCH");
    case "bad-key":
      return dataverseError(
        400,
        CODES.syntax,
        `Bad Request - Error in query syntax: '${route.raw}' is not a valid key.`,
      );
    case "contacts":
      return req.method === "GET" ? listContacts(req, ctx) : methodNotAllowed(req.method, "GET");
    case "whoami":
      return req.method === "GET" ? whoAmI(ctx) : methodNotAllowed(req.method, "GET");
    case "unknown":
      return dataverseError(
        404,
        CODES.syntax,
        `Resource not found for the segment '${route.segment}'.`,
      );
  }
}
