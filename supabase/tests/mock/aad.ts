/**
 * Azure AD (Microsoft Entra ID) v2.0 token endpoint, client-credentials grant only: request
 * validation in the order AAD applies it and AAD-shaped answers. Pure functions.
 */

export interface AadConfig {
  tenantId: string;
  clientId: string;
  clientSecret: string;
  /** Origins whose `<origin>/.default` scope is accepted (the mock's Dataverse URL). */
  resourceOrigins: readonly string[];
}

export type TokenCheck =
  | { ok: true; clientId: string; scope: string }
  | { ok: false; status: 400 | 401; error: string; code: number; description: string };

export interface AadErrorBody {
  error: string;
  error_description: string;
  error_codes: number[];
  timestamp: string;
  trace_id: string;
  correlation_id: string;
  error_uri: string;
}

export interface AadTokenBody {
  token_type: "Bearer";
  expires_in: number;
  ext_expires_in: number;
  access_token: string;
}

function reject(
  status: 400 | 401,
  error: string,
  code: number,
  description: string,
): TokenCheck {
  return { ok: false, status, error, code, description };
}

const missing = (name: string) =>
  reject(
    400,
    "invalid_request",
    900144,
    `The request body must contain the following parameter: '${name}'.`,
  );

export const invalidSecret = (clientId: string): TokenCheck =>
  reject(
    401,
    "invalid_client",
    7000215,
    "Invalid client secret provided. Ensure the secret being sent in the request is the client " +
      `secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
  );

export const tenantNotFound = (tenant: string): TokenCheck =>
  reject(
    400,
    "invalid_request",
    90002,
    `Tenant '${tenant}' not found. Check to make sure you have the correct tenant ID and are ` +
      "signing into the correct cloud.",
  );

export const postOnly = (method: string): TokenCheck =>
  reject(
    400,
    "invalid_request",
    900561,
    `The endpoint only accepts POST, OPTIONS requests. Received a ${method} request.`,
  );

/** Timing-safe-ish string comparison (the mock is not a security boundary, but be tidy). */
function sameSecret(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function scopeProblem(scope: string, origins: readonly string[]): TokenCheck | undefined {
  if (!scope.endsWith("/.default")) {
    return reject(
      400,
      "invalid_scope",
      1002012,
      `The provided value for scope ${scope} is not valid. Client credential flows must have a ` +
        "scope value with /.default suffixed to the resource identifier (application ID URI).",
    );
  }
  const resource = scope.slice(0, -"/.default".length).replace(/\/$/, "");
  if (!origins.includes(resource)) {
    return reject(
      400,
      "invalid_resource",
      500011,
      `The resource principal named ${resource} was not found in the tenant. This can happen if ` +
        "the application has not been installed by the administrator of the tenant or consented " +
        "to by any user in the tenant. You might have sent your authentication request to the " +
        "wrong tenant.",
    );
  }
  return undefined;
}

/** Validates a token request body (form-encoded) against the configured app registration. */
export function checkTokenRequest(
  contentType: string | null,
  body: string,
  cfg: AadConfig,
): TokenCheck {
  const isForm = (contentType ?? "").toLowerCase().startsWith("application/x-www-form-urlencoded");
  const form = new URLSearchParams(isForm ? body : "");
  const grantType = form.get("grant_type");
  if (!grantType) return missing("grant_type");
  if (grantType !== "client_credentials") {
    return reject(
      400,
      "unsupported_grant_type",
      70003,
      `The app requested an unsupported grant type '${grantType}'.`,
    );
  }
  const clientId = form.get("client_id");
  if (!clientId) return missing("client_id");
  if (clientId !== cfg.clientId) {
    return reject(
      400,
      "unauthorized_client",
      700016,
      `Application with identifier '${clientId}' was not found in the directory ` +
        `'${cfg.tenantId}'. This can happen if the application has not been installed by the ` +
        "administrator of the tenant or consented to by any user in the tenant. You may have " +
        "sent your authentication request to the wrong tenant.",
    );
  }
  const scope = form.get("scope");
  if (!scope) return missing("scope");
  const bad = scopeProblem(scope, cfg.resourceOrigins);
  if (bad) return bad;
  const secret = form.get("client_secret");
  if (!secret) {
    return reject(
      401,
      "invalid_client",
      7000218,
      "The request body must contain the following parameter: 'client_assertion' or " +
        "'client_secret'.",
    );
  }
  if (!sameSecret(secret, cfg.clientSecret)) return invalidSecret(clientId);
  return { ok: true, clientId, scope };
}

/** AAD's timestamp format: `2024-05-01 12:34:56Z`. */
export function aadTimestamp(now: Date): string {
  return now.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

/** The JSON body AAD sends with an error; trace and correlation ids are fresh UUIDs. */
export function aadErrorBody(
  error: string,
  code: number,
  description: string,
  now: Date = new Date(),
): AadErrorBody {
  const traceId = crypto.randomUUID();
  const correlationId = crypto.randomUUID();
  const timestamp = aadTimestamp(now);
  return {
    error,
    error_description: `AADSTS${code}: ${description}\r\nTrace ID: ${traceId}\r\n` +
      `Correlation ID: ${correlationId}\r\nTimestamp: ${timestamp}`,
    error_codes: [code],
    timestamp,
    trace_id: traceId,
    correlation_id: correlationId,
    error_uri: `https://login.microsoftonline.com/error?code=${code}`,
  };
}

/** A random opaque access token (not a JWT: clients must treat tokens as opaque). */
export function newAccessToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return "mock." + btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_")
    .replace(/=+$/, "");
}

export function tokenBody(accessToken: string, lifetimeSeconds: number): AadTokenBody {
  return {
    token_type: "Bearer",
    expires_in: lifetimeSeconds,
    ext_expires_in: lifetimeSeconds,
    access_token: accessToken,
  };
}
