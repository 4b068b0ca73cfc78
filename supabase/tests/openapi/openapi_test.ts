// Real answers of the served function checked against its OpenAPI description
// (supabase/functions/hlf-dynamics-sync/openapi.yaml): every action's success answer, every error
// code of the contract that can be provoked from outside (all but INTERNAL), both auth schemes,
// and the spec's own consistency with the contract. Uses the end-to-end harness: a fresh migrated
// database on $DATABASE_URL, the HTTPS Dynamics mock, and the function as its own process.
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite, type Harness, type Invoked } from "../e2e/harness.ts";
import { FUNCTION_PATH, loadSpec } from "./spec.ts";

const spec = await loadSpec();
const suite = e2eSuite({ credentials: "env", dbPrefix: "hlf_openapi" });

/** The contract's error codes and their statuses ("The function"). */
const CONTRACT_ERRORS: Record<string, number> = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  PAYLOAD_TOO_LARGE: 413,
  DYNAMICS_SYNC_FAILED: 502,
  AUTH_FAILED: 503,
  DYNAMICS_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/** Error codes seen in real answers (the last test checks the coverage). */
const seenCodes = new Set<string>();
/** Answer schemas seen in real 200s of POST. */
const seenAnswers = new Set<string>();

function conforms(what: string, r: Invoked, method = "POST"): void {
  const problems = spec.validateResponse(method, r.status, r.headers, r.text);
  assertEquals(problems, [], `${what}: ${r.status} ${r.text}`);
  const code = (r.json as { error?: { code?: string } } | undefined)?.error?.code;
  if (code) {
    assertEquals(CONTRACT_ERRORS[code], r.status, `${what}: ${code} with status ${r.status}`);
    assert(!/\n\s+at /.test(r.text), `${what}: a stack trace in ${r.text}`);
    seenCodes.add(code);
  }
}

function expectStatus(what: string, r: Invoked, status: number, code?: string): void {
  assertEquals(r.status, status, `${what}: ${r.text}`);
  if (code) assertEquals((r.json as { error: { code: string } }).error.code, code, what);
  conforms(what, r);
  if (status === 200) {
    const kinds = spec.answerKinds(r.json);
    assertEquals(kinds.length, 1, `${what}: matches ${kinds.length} answer schemas`);
    seenAnswers.add(kinds[0]);
  }
}

async function raw(h: Harness, init: RequestInit & { path?: string }): Promise<Invoked> {
  const res = await fetch(h.functions[0].origin + (init.path ?? FUNCTION_PATH), init);
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch { /* not JSON */ }
  return { status: res.status, text, json: json as Record<string, unknown>, headers: res.headers };
}

Deno.test("the spec documents every error code of the contract with its status", () => {
  for (const [code, status] of Object.entries(CONTRACT_ERRORS)) {
    assert(
      spec.errorCodes(status).includes(code),
      `${code} is not documented under ${status} (documented: ${spec.errorCodes(status)})`,
    );
  }
  const schemes = Object.keys(spec.doc.components.securitySchemes).sort();
  assertEquals(schemes, ["coordinatorJwt", "serviceRole"]);
  const post = spec.doc.paths[FUNCTION_PATH].post;
  assertEquals(post.security, [{ serviceRole: [] }, { coordinatorJwt: [] }]);
});

Deno.test("the spec's request examples conform and malformed bodies do not", () => {
  const examples = spec.doc.paths[FUNCTION_PATH].post.requestBody.content["application/json"]
    .examples;
  const actions = Object.keys(examples).sort();
  assertEquals(actions, [
    "expiry_check",
    "health",
    "process_queue",
    "reconcile",
    "redrive",
    "status",
    "sync_mentor",
    "webhook",
  ]);
  for (const [name, ex] of Object.entries<{ value: unknown }>(examples)) {
    assertEquals(spec.validateRequest(ex.value), [], name);
  }
  for (
    const bad of [
      {},
      [],
      { action: "nope" },
      { action: "sync_mentor" },
      { action: "sync_mentor", mentor_id: "not-a-uuid" },
      { action: "process_queue", max_jobs: 0 },
      { action: "process_queue", extra: 1 },
      { action: "reconcile", dry_run: "yes" },
      { action: "reconcile", dry_run: null },
      { action: "redrive", dead_letter_id: 1.5 },
      { type: "UPDATE", table: "t", schema: "public" },
      { type: "TRUNCATE", table: "t", schema: "public", record: null },
    ]
  ) {
    assert(spec.validateRequest(bad).length > 0, `accepted ${JSON.stringify(bad)}`);
  }
});

suite.test("GET liveness, other methods 405 with Allow, auth failures 401", async (h) => {
  const get = await h.invoke(undefined, { method: "GET", token: null });
  assertEquals(get.status, 200);
  conforms("GET", get, "GET");
  for (const method of ["PUT", "PATCH", "DELETE"]) {
    const r = await h.invoke({ action: "health" }, { method });
    assertEquals(r.status, 405, `${method}: ${r.text}`);
    conforms(method, r, method);
  }
  expectStatus("no auth", await h.invoke({ action: "health" }, { token: null }), 401);
  expectStatus("wrong key", await h.invoke({ action: "health" }, { token: "nope" }), 401);
  const expired = await h.jwt(crypto.randomUUID(), { expiresIn: -3600 });
  expectStatus("expired JWT", await h.invoke({ action: "status" }, { token: expired }), 401);
  const forged = await h.jwt(crypto.randomUUID(), { secret: "another-secret-entirely" });
  expectStatus("forged JWT", await h.invoke({ action: "status" }, { token: forged }), 401);
  const anon = await h.jwt(crypto.randomUUID(), { role: "anon" });
  expectStatus("anon JWT", await h.invoke({ action: "status" }, { token: anon }), 401);
});

suite.test("malformed bodies answer 400 BAD_REQUEST, oversized ones 413", async (h) => {
  const headers = {
    authorization: `Bearer ${h.serviceRoleKey}`,
    "content-type": "application/json",
  };
  for (const body of ["", "   ", "[]", "null", "42", '"x"', "{", '{"action":1}', "\u0000"]) {
    const r = await raw(h, { method: "POST", headers, body });
    expectStatus(`body ${JSON.stringify(body)}`, r, 400, "BAD_REQUEST");
  }
  for (
    const body of [
      { action: "nope" },
      { action: "process_queue", max_jobs: 0 },
      { action: "process_queue", max_jobs: "5" },
      { action: "sync_mentor", mentor_id: "nope" },
      { action: "status", mentor_ids: "x" },
      { action: "status", mentor_ids: [1] },
      { action: "reconcile", dry_run: "true" },
      { action: "reconcile", dry_run: null }, // found by schemathesis: null meant a real run
      { action: "reconcile", cursor: 5 },
      { action: "redrive" },
      { action: "redrive", dead_letter_id: -1 },
      { action: "health", extra: true },
    ]
  ) {
    expectStatus(JSON.stringify(body), await h.invoke(body), 400, "BAD_REQUEST");
  }
  const big = JSON.stringify({ action: "health", pad: "x".repeat(70_000) });
  expectStatus("70 kB", await raw(h, { method: "POST", headers, body: big }), 413);
});

suite.test("every action's answer conforms, as service and as coordinator", async (h) => {
  const o = await h.seedOrgs();
  const a = await h.mentor({ org: o.hlf, chapters: [o.hlfA] });
  const b = await h.mentor({
    org: o.hlf,
    chapters: [o.hlfB],
    status: "paused",
    portalVisible: true,
  });
  const coordinator = await h.jwt(await h.coordinator([o.hlfA]));

  // Webhook payload and process_queue, with one job to do.
  await h.setStatus(a.id, "paused");
  const webhook = await h.invoke({
    type: "UPDATE",
    table: "peer_mentors",
    schema: "public",
    record: { id: a.id, status: "paused" },
    old_record: { id: a.id, status: "active" },
  });
  expectStatus("webhook", webhook, 200);
  assertEquals(webhook.json, { processed: 1, synced: 1, retrying: 0, dead: 0 });
  expectStatus("process_queue", await h.invoke({ action: "process_queue", max_jobs: 5 }), 200);
  await h.setStatus(a.id, "active");

  // sync_mentor: service, coordinator of the mentor's chapter, coordinator of another chapter.
  const synced = await h.invoke({ action: "sync_mentor", mentor_id: a.id });
  expectStatus("sync_mentor", synced, 200);
  assertEquals(synced.json.outcome, "synced");
  const byCoordinator = await h.invoke(
    { action: "sync_mentor", mentor_id: a.id },
    { token: coordinator },
  );
  expectStatus("sync_mentor as coordinator", byCoordinator, 200);
  expectStatus(
    "sync_mentor outside the coordinator's chapters",
    await h.invoke({ action: "sync_mentor", mentor_id: b.id }, { token: coordinator }),
    403,
    "FORBIDDEN",
  );
  expectStatus(
    "service action as coordinator",
    await h.invoke({ action: "health" }, { token: coordinator }),
    403,
    "FORBIDDEN",
  );
  expectStatus(
    "unknown mentor",
    await h.invoke({ action: "sync_mentor", mentor_id: crypto.randomUUID() }),
    404,
    "NOT_FOUND",
  );

  // A sync that exhausts its attempts: 502, then status shows the open failure and job.
  h.mock.setContactScenario(b.contactId, { kind: "always-503" });
  const failed = await h.invoke({ action: "sync_mentor", mentor_id: b.id });
  expectStatus("sync_mentor exhausted", failed, 502, "DYNAMICS_SYNC_FAILED");
  h.mock.setContactScenario(b.contactId, null);
  const status = await h.invoke({ action: "status" });
  expectStatus("status", status, 200);
  const rows = (status.json as { mentors: { mentor_id: string; open_failure: unknown }[] })
    .mentors;
  assertEquals(rows.length, 2);
  assert(rows.find((m) => m.mentor_id === b.id)?.open_failure !== null, "an open failure shown");
  const scoped = await h.invoke({ action: "status", mentor_ids: [a.id, b.id] }, {
    token: coordinator,
  });
  expectStatus("status as coordinator", scoped, 200);
  assertEquals(
    (scoped.json as { mentors: { mentor_id: string }[] }).mentors.map((m) => m.mentor_id),
    [
      a.id,
    ],
  );

  expectStatus("reconcile dry run", await h.invoke({ action: "reconcile", dry_run: true }), 200);
  expectStatus(
    "reconcile paged",
    await h.invoke({ action: "reconcile", dry_run: true, limit: 1, cursor: null }),
    200,
  );
  expectStatus("health", await h.invoke({ action: "health" }), 200);
  expectStatus("expiry_check", await h.invoke({ action: "expiry_check" }), 200);

  // redrive: unknown, then a real dead letter (a 404 from Dynamics is permanent).
  expectStatus(
    "redrive unknown",
    await h.invoke({ action: "redrive", dead_letter_id: 987654 }),
    404,
    "NOT_FOUND",
  );
  h.mock.setContactScenario(a.contactId, { kind: "404", times: 1 });
  await h.setStatus(a.id, "paused");
  assertEquals((await h.processQueue()).dead, 1);
  const [dl] = await h.deadLetters(a.id);
  const redriven = await h.invoke({ action: "redrive", dead_letter_id: dl.id });
  expectStatus("redrive", redriven, 200);
  expectStatus(
    "redrive twice",
    await h.invoke({ action: "redrive", dead_letter_id: dl.id }),
    400,
    "BAD_REQUEST",
  );
});

suite.test("503 AUTH_FAILED and DYNAMICS_UNAVAILABLE conform", async (h) => {
  h.mock.setScenario({ kind: "invalid_client" });
  const auth = await h.invoke({ action: "health" });
  expectStatus("health with rejected credentials", auth, 503, "AUTH_FAILED");
  h.mock.setScenario({ kind: "always-success" });

  const down = await h.spawnFunction({
    // Nothing listens there: the connection is refused at once.
    DYNAMICS_BASE_URL: "https://127.0.0.1:9",
    DYNAMICS_TOKEN_URL: "https://127.0.0.1:9/{tenant}/oauth2/v2.0/token",
  });
  try {
    const r = await h.invoke({ action: "health" }, { fn: down });
    expectStatus("health with Dynamics down", r, 503, "DYNAMICS_UNAVAILABLE");
  } finally {
    await h.killFunction(down);
  }
});

suite.test("every answer schema and every provokable error code was seen", () => {
  const expected = Object.keys(CONTRACT_ERRORS).filter((c) => c !== "INTERNAL").sort();
  assertEquals([...seenCodes].sort(), expected);
  const answers = spec.doc.components.schemas.Answer.oneOf.map((s: { $ref: string }) => s.$ref);
  assertEquals([...seenAnswers].sort(), [...answers].sort());
  return Promise.resolve();
});

suite.finish();
