// Request validation: every field checked, every problem a 400 with a message naming the field.
import { HttpError } from "./http.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type Action =
  | { action: "webhook" }
  | { action: "process_queue"; maxJobs: number }
  | { action: "sync_mentor"; mentorId: string }
  | { action: "status"; mentorIds: string[] | null }
  | { action: "reconcile"; dryRun: boolean; cursor: string | null; limit: number }
  | { action: "expiry_check" }
  | { action: "health" }
  | { action: "redrive"; deadLetterId: number };

const FIELDS: Record<string, string[]> = {
  process_queue: ["max_jobs"],
  sync_mentor: ["mentor_id"],
  status: ["mentor_ids"],
  reconcile: ["dry_run", "cursor", "limit"],
  expiry_check: [],
  health: [],
  redrive: ["dead_letter_id"],
};

/** Parses a request body object into an action. */
export function parseAction(body: Record<string, unknown>): Action {
  if (!("action" in body) && isWebhookPayload(body)) return { action: "webhook" };
  const action = body.action;
  if (typeof action !== "string") {
    throw new HttpError("BAD_REQUEST", "field 'action' is required and must be a string");
  }
  const allowed = FIELDS[action];
  if (!allowed) throw new HttpError("BAD_REQUEST", `unknown action '${action.slice(0, 40)}'`);
  for (const key of Object.keys(body)) {
    if (key !== "action" && !allowed.includes(key)) {
      throw new HttpError(
        "BAD_REQUEST",
        `unknown field '${key.slice(0, 40)}' for action ${action}`,
      );
    }
  }
  switch (action) {
    case "process_queue":
      return { action, maxJobs: optionalInt(body, "max_jobs", 100, 1, 10_000) };
    case "sync_mentor":
      return { action, mentorId: uuid(body.mentor_id, "mentor_id") };
    case "status": {
      const ids = body.mentor_ids;
      if (ids === undefined || ids === null) return { action, mentorIds: null };
      if (!Array.isArray(ids) || ids.length > 1000) {
        throw new HttpError(
          "BAD_REQUEST",
          "field 'mentor_ids' must be an array of at most 1000 UUIDs",
        );
      }
      return { action, mentorIds: ids.map((v, i) => uuid(v, `mentor_ids[${i}]`)) };
    }
    case "reconcile": {
      // Absent means false; null is a wrong type (it must not silently mean "a real run").
      const dryRun = body.dry_run === undefined ? false : body.dry_run;
      if (typeof dryRun !== "boolean") {
        throw new HttpError("BAD_REQUEST", "field 'dry_run' must be a boolean");
      }
      const cursor = body.cursor === undefined || body.cursor === null
        ? null
        : uuid(body.cursor, "cursor");
      return { action, dryRun, cursor, limit: optionalInt(body, "limit", 5_000, 1, 50_000) };
    }
    case "redrive":
      return {
        action,
        deadLetterId: requiredInt(body, "dead_letter_id", 1, Number.MAX_SAFE_INTEGER),
      };
    default:
      return { action } as Action;
  }
}

/** A Supabase Database Webhook payload: `{type, table, schema, record, old_record}`. */
export function isWebhookPayload(body: Record<string, unknown>): boolean {
  return typeof body.type === "string" && ["INSERT", "UPDATE", "DELETE"].includes(body.type) &&
    typeof body.table === "string" && typeof body.schema === "string" &&
    ("record" in body || "old_record" in body);
}

export function isUuid(v: unknown): v is string {
  return typeof v === "string" && UUID.test(v);
}

function uuid(v: unknown, field: string): string {
  if (!isUuid(v)) throw new HttpError("BAD_REQUEST", `field '${field}' must be a UUID`);
  return v.toLowerCase();
}

function optionalInt(
  body: Record<string, unknown>,
  field: string,
  fallback: number,
  min: number,
  max: number,
): number {
  return body[field] === undefined ? fallback : requiredInt(body, field, min, max);
}

function requiredInt(
  body: Record<string, unknown>,
  field: string,
  min: number,
  max: number,
): number {
  const v = body[field];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new HttpError(
      "BAD_REQUEST",
      `field '${field}' must be an integer between ${min} and ${max}`,
    );
  }
  return v;
}
