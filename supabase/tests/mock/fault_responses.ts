/**
 * Answers for injected faults and auth failures, shaped like the real services: AAD error
 * bodies on the token endpoint, Dataverse error bodies (and WWW-Authenticate) on the API, and a
 * "reset" answer that makes Deno.serve drop the exchange without any HTTP response.
 */

import { aadErrorBody, invalidSecret } from "./aad.ts";
import { CODES, dataverseError, notFoundContact } from "./dataverse_api.ts";
import type { WhoAmI } from "./dataverse_api.ts";
import { REQUEST_LIMIT_CODE } from "./limiter.ts";

export interface FaultContext {
  tenantId: string;
  clientId: string;
  baseUrl: string;
  whoAmI: WhoAmI;
}

/**
 * A response whose body stream is already errored. Deno.serve (2.1) then never sends a status
 * line: over HTTP/1.1 it closes the connection ("connection closed before message completed"),
 * over HTTP/2 it resets the stream (RST_STREAM INTERNAL_ERROR). Either way the client's fetch
 * rejects with a TypeError, exactly as for a connection reset, and no answer reaches it.
 */
export function resetResponse(): Response {
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.error(new Error("mock: connection reset (scenario)"));
    },
  });
  return new Response(body, { status: 200 });
}

export function aadError(
  status: number,
  error: string,
  code: number,
  description: string,
  headers: HeadersInit = {},
): Response {
  const h = new Headers(headers);
  h.set("Content-Type", "application/json; charset=utf-8");
  h.set("Cache-Control", "no-store, no-cache");
  return new Response(JSON.stringify(aadErrorBody(error, code, description)), {
    status,
    headers: h,
  });
}

export function invalidClientResponse(clientId: string): Response {
  const check = invalidSecret(clientId);
  if (check.ok) throw new Error("unreachable");
  return aadError(check.status, check.error, check.code, check.description);
}

export function tokenDownResponse(retryAfterSeconds: number): Response {
  return aadError(
    503,
    "temporarily_unavailable",
    90033,
    "A transient error has occurred. Please try again.",
    { "Retry-After": String(retryAfterSeconds) },
  );
}

/** `WWW-Authenticate` as Dataverse sends it on 401. */
export function wwwAuthenticate(ctx: FaultContext, description: string): string {
  return `Bearer error="invalid_token", error_description="${description}", ` +
    `authorization_uri="https://login.microsoftonline.com/${ctx.tenantId}/oauth2/authorize", ` +
    `resource_id="${ctx.baseUrl}/"`;
}

export function unauthorizedResponse(ctx: FaultContext, description: string): Response {
  return dataverseError(401, CODES.unauthorized, description, {
    "WWW-Authenticate": wwwAuthenticate(ctx, description),
  });
}

export function forbiddenResponse(ctx: FaultContext): Response {
  return dataverseError(
    403,
    CODES.accessDenied,
    `Principal user (Id=${ctx.whoAmI.UserId}, type=8, roleCount=1, privilegeCount=0, ` +
      "accessMode=4), is missing prvWriteContact privilege on OTC=2 for entity 'contact'.",
  );
}

export function throttledResponse(retryAfterSeconds: number, code: string, message: string) {
  return dataverseError(429, code, message, { "Retry-After": String(retryAfterSeconds) });
}

export function unavailableResponse(retryAfterSeconds: number | undefined): Response {
  const headers: Record<string, string> = {};
  if (retryAfterSeconds !== undefined) headers["Retry-After"] = String(retryAfterSeconds);
  return dataverseError(
    503,
    CODES.unavailable,
    "Service Unavailable: the server is temporarily unable to handle the request.",
    headers,
  );
}

/** The answer for an API status fault (scenarios 401/403/404/429/503). */
export function statusFaultResponse(
  status: 401 | 403 | 404 | 429 | 503,
  retryAfterSeconds: number | undefined,
  contactId: string | undefined,
  ctx: FaultContext,
): Response {
  switch (status) {
    case 401:
      return unauthorizedResponse(ctx, "The access token is invalid or has been revoked.");
    case 403:
      return forbiddenResponse(ctx);
    case 404:
      return contactId === undefined
        ? dataverseError(404, CODES.syntax, "Resource not found.")
        : notFoundContact(contactId);
    case 429:
      return throttledResponse(
        retryAfterSeconds ?? 1,
        REQUEST_LIMIT_CODE,
        "Number of requests exceeded the limit of 6000 over time window of 300 seconds.",
      );
    case 503:
      return unavailableResponse(retryAfterSeconds);
  }
}
