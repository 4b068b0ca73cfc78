// Who is calling: the service (bearer = SUPABASE_SERVICE_ROLE_KEY, or a JWT with role
// service_role) or a coordinator (a user JWT with role authenticated, verified with jose against
// SUPABASE_JWT_SECRET or SUPABASE_JWKS). Chapter scope is checked in the database, not here.
import type { JWTPayload, JWTVerifyGetKey } from "jose";
import { HttpError } from "./http.ts";

export type Caller =
  | { kind: "service" }
  | { kind: "coordinator"; userId: string; claims: JWTPayload };

export interface AuthConfig {
  serviceRoleKey: string;
  jwtSecret?: string;
  jwks?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function makeAuthenticator(config: AuthConfig): (req: Request) => Promise<Caller> {
  const secret = config.jwtSecret ? new TextEncoder().encode(config.jwtSecret) : undefined;
  const serviceKey = new TextEncoder().encode(config.serviceRoleKey);
  // jose is loaded on the first user JWT: service callers (webhook, cron, CLI), the bulk of the
  // traffic, never pay for it, and a cold start answers sooner.
  let verifier: Promise<(token: string) => Promise<JWTPayload>> | undefined;
  const verify = (token: string) => {
    verifier ??= import("jose").then(({ createLocalJWKSet, jwtVerify }) => {
      const options = { algorithms: secret ? ["HS256"] : ["RS256", "ES256"], clockTolerance: 5 };
      if (secret) return async (t: string) => (await jwtVerify(t, secret, options)).payload;
      const jwks: JWTVerifyGetKey = createLocalJWKSet(JSON.parse(config.jwks ?? "{}"));
      return async (t: string) => (await jwtVerify(t, jwks, options)).payload;
    });
    return verifier.then((v) => v(token));
  };

  return async (req) => {
    const header = req.headers.get("authorization") ?? "";
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new HttpError("UNAUTHORIZED", "missing bearer token");
    const token = match[1];
    if (timingSafeEqual(new TextEncoder().encode(token), serviceKey)) return { kind: "service" };

    let payload: JWTPayload;
    try {
      payload = await verify(token);
    } catch {
      throw new HttpError("UNAUTHORIZED", "invalid or expired token");
    }
    if (payload.role === "service_role") return { kind: "service" };
    if (
      payload.role !== "authenticated" || typeof payload.sub !== "string" || !UUID.test(payload.sub)
    ) {
      throw new HttpError("UNAUTHORIZED", "the token does not identify a signed-in user");
    }
    return { kind: "coordinator", userId: payload.sub, claims: payload };
  };
}

/** Constant-time comparison for equal-length inputs; unequal lengths are simply unequal. */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  let diff = 0;
  for (let i = 0; i < a.byteLength; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
