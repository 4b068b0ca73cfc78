// The HTTP handler: method and path, body limit, JSON validation, auth, then the action.
// Every error is {"error":{"code","message"}}; an unexpected one is a 500 INTERNAL without detail.
import { runAction } from "./actions.ts";
import { makeAuthenticator } from "./auth.ts";
import type { Context } from "./context.ts";
import { errorResponse, HttpError, json, readJsonObject } from "./http.ts";
import { describe, log } from "./log.ts";
import { parseAction } from "./validate.ts";

export const FUNCTION_NAME = "hlf-dynamics-sync";

export function createHandler(ctx: Context): (req: Request) => Promise<Response> {
  const authenticate = makeAuthenticator(ctx.settings);
  return async (req) => {
    const started = Date.now();
    const path = new URL(req.url).pathname.replace(/\/+$/, "");
    try {
      if (!path.endsWith("/" + FUNCTION_NAME)) throw new HttpError("NOT_FOUND", "no such path");
      if (req.method === "GET") return json(200, { ok: true, function: FUNCTION_NAME });
      if (req.method !== "POST") {
        throw new HttpError("METHOD_NOT_ALLOWED", `method ${req.method} is not allowed; use POST`);
      }
      const caller = await authenticate(req);
      const action = parseAction(await readJsonObject(req));
      const answer = await runAction(ctx, caller, action);
      log("info", "request", {
        action: action.action,
        caller: caller.kind,
        status: answer.status,
        ms: Date.now() - started,
      });
      return json(answer.status, answer.body);
    } catch (e) {
      if (e instanceof HttpError) {
        log(e.status >= 500 ? "warn" : "info", "request_rejected", {
          code: e.code,
          status: e.status,
          message: e.message,
          ms: Date.now() - started,
        });
        return errorResponse(e);
      }
      log("error", "request_failed", { error: describe(e), ms: Date.now() - started });
      return errorResponse(new HttpError("INTERNAL", "internal error; see the function logs"));
    }
  };
}
