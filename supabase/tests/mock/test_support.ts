/** Shared helpers for the mock's own tests: a CA per test module and a started mock per test. */

import { generateTestCa } from "./certs.ts";
import type { TestCa } from "./certs.ts";
import { DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, startDynamicsMock } from "./dynamics_mock.ts";
import type { DynamicsMock, DynamicsMockOptions } from "./dynamics_mock.ts";

export const CONTACT_A = "aaaaaaaa-0000-4000-8000-000000000001";
export const CONTACT_B = "bbbbbbbb-0000-4000-8000-000000000002";
export const MISSING = "cccccccc-0000-4000-8000-000000000003";

let caPromise: Promise<{ ca: TestCa; dir: string }> | undefined;

/** One throwaway CA per test process (removed at unload). */
export function testCa(): Promise<TestCa> {
  caPromise ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "dynamics-mock-ca-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    return { ca: await generateTestCa(dir), dir };
  })();
  return caPromise.then((x) => x.ca);
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

export interface DataverseErrorBody {
  error: { code: string; message: string };
}

export interface ListBody {
  "@odata.context": string;
  value: Record<string, unknown>[];
  "@odata.nextLink"?: string;
}

/** The answer's JSON as `T` (tests then assert on its fields; a wrong shape fails them). */
export function body<T>(a: Answer): T {
  if (a.json === undefined) throw new Error(`expected a JSON body, got ${a.status} ${a.text}`);
  return a.json as T;
}

export function errorCode(a: Answer): string {
  return body<DataverseErrorBody>(a).error.code;
}

export interface Harness {
  mock: DynamicsMock;
  client: Deno.HttpClient;
  ca: TestCa;
  /** A fresh access token from the mock's token endpoint. */
  token(): Promise<string>;
  /** Token endpoint call with form fields (defaults: a valid client-credentials request). */
  tokenCall(fields?: Record<string, string | undefined>, init?: RequestInit): Promise<Answer>;
  /** API call; `path` is relative to the Web API root unless it starts with "/". */
  api(method: string, path: string, init?: ApiInit): Promise<Answer>;
  /** A PATCH with the contract's headers and body. */
  patch(contactId: string, visible: boolean, init?: ApiInit): Promise<Answer>;
  fetch(url: string, init?: RequestInit): Promise<Answer>;
}

export interface ApiInit {
  token?: string | null;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
}

async function answer(res: Response): Promise<Answer> {
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text === "" ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

export const PATCH_HEADERS: Readonly<Record<string, string>> = {
  "OData-MaxVersion": "4.0",
  "OData-Version": "4.0",
  "Content-Type": "application/json",
  "If-Match": "*",
};

export async function withMock(
  opts: Partial<DynamicsMockOptions>,
  fn: (h: Harness) => Promise<void>,
): Promise<void> {
  const ca = await testCa();
  const mock = await startDynamicsMock({ certPem: ca.certPem, keyPem: ca.keyPem, ...opts });
  const client = Deno.createHttpClient({ caCerts: [ca.caCertPem] });
  const doFetch = async (url: string, init: RequestInit = {}) =>
    answer(await fetch(url, { ...init, client }));
  const tokenCall = (fields: Record<string, string | undefined> = {}, init: RequestInit = {}) => {
    const all: Record<string, string | undefined> = {
      grant_type: "client_credentials",
      client_id: opts.clientId ?? DEFAULT_CLIENT_ID,
      client_secret: opts.clientSecret ?? DEFAULT_CLIENT_SECRET,
      scope: mock.scope,
      ...fields,
    };
    const form = new URLSearchParams();
    for (const [k, v] of Object.entries(all)) if (v !== undefined) form.set(k, v);
    return doFetch(mock.tokenUrl, { method: "POST", body: form, ...init });
  };
  const token = async () => {
    const a = await tokenCall();
    if (a.status !== 200) throw new Error(`token request failed: ${a.status} ${a.text}`);
    return body<{ access_token: string }>(a).access_token;
  };
  let cached: string | undefined;
  const api = async (method: string, path: string, init: ApiInit = {}) => {
    const headers: Record<string, string> = { ...init.headers };
    const bearer = init.token === undefined ? (cached ??= await token()) : init.token;
    if (bearer !== null) headers.Authorization = `Bearer ${bearer}`;
    const url = path.startsWith("https://")
      ? path
      : `${mock.baseUrl}${path.startsWith("/") ? path : `/api/data/v9.2/${path}`}`;
    return doFetch(url, { method, headers, body: init.body, signal: init.signal });
  };
  const patch = (contactId: string, visible: boolean, init: ApiInit = {}) =>
    api("PATCH", `contacts(${contactId})`, {
      body: JSON.stringify({ [mock.visibilityField]: visible }),
      ...init,
      headers: { ...PATCH_HEADERS, ...init.headers },
    });
  try {
    await fn({ mock, client, ca, token, tokenCall, api, patch, fetch: doFetch });
  } finally {
    client.close();
    await mock.close();
  }
}
