import { assertEquals, assertThrows } from "../../../tests/assert.ts";
import { HttpError } from "./http.ts";
import { isWebhookPayload, parseAction } from "./validate.ts";

const ID = "3f1c2a4e-1111-4222-8333-944445555666";

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof HttpError) return e.code;
    throw e;
  }
  return "no error";
}

Deno.test("parseAction accepts every contract action with defaults", () => {
  assertEquals(parseAction({ action: "process_queue" }), { action: "process_queue", maxJobs: 100 });
  assertEquals(parseAction({ action: "sync_mentor", mentor_id: ID.toUpperCase() }), {
    action: "sync_mentor",
    mentorId: ID,
  });
  assertEquals(parseAction({ action: "status" }), { action: "status", mentorIds: null });
  assertEquals(parseAction({ action: "reconcile", dry_run: true }), {
    action: "reconcile",
    dryRun: true,
    cursor: null,
    limit: 5000,
  });
  assertEquals(parseAction({ action: "redrive", dead_letter_id: 7 }), {
    action: "redrive",
    deadLetterId: 7,
  });
  assertEquals(parseAction({ action: "health" }), { action: "health" });
});

Deno.test("parseAction rejects wrong types, unknown actions and unknown fields with 400", () => {
  const bad: Record<string, unknown>[] = [
    {},
    { action: 5 },
    { action: "drop_tables" },
    { action: "sync_mentor" },
    { action: "sync_mentor", mentor_id: "not-a-uuid" },
    { action: "sync_mentor", mentor_id: ID, extra: 1 },
    { action: "process_queue", max_jobs: 0 },
    { action: "process_queue", max_jobs: 1.5 },
    { action: "process_queue", max_jobs: "10" },
    { action: "status", mentor_ids: "x" },
    { action: "status", mentor_ids: [ID, "nope"] },
    { action: "reconcile", dry_run: "yes" },
    { action: "redrive" },
    { action: "redrive", dead_letter_id: -1 },
  ];
  for (const body of bad) {
    assertEquals(code(() => parseAction(body)), "BAD_REQUEST", JSON.stringify(body));
  }
});

Deno.test("a Database Webhook payload is recognised without an action field", () => {
  const payload = {
    type: "UPDATE",
    table: "peer_mentors",
    schema: "public",
    record: {},
    old_record: {},
  };
  assertEquals(isWebhookPayload(payload), true);
  assertEquals(parseAction(payload), { action: "webhook" });
  assertEquals(
    isWebhookPayload({ type: "TRUNCATE", table: "t", schema: "s", record: null }),
    false,
  );
  assertThrows(() => parseAction({ type: "UPDATE", table: "peer_mentors" }));
});
