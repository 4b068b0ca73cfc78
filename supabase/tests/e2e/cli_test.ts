// The operator CLI (scripts/hlf-sync) as a subprocess against the running function, the
// database and the HTTPS mock: every command, --help, --json, progress lines, and the exit codes
// scripts rely on (0 done, 1 operation failed, 2 usage, 3 configuration/connection). Break-glass
// runs with credentials from the CLI's environment while Vault holds none.
import { assert, assertEquals } from "../mock/assert.ts";
import { e2eSuite, type Harness, randomSecret, ROOT } from "./harness.ts";
import { deadWebhookUrl, startWebhookReceiver } from "./webhook_receiver.ts";

const suite = e2eSuite({ credentials: "env" });
const CLI = `${ROOT}scripts/hlf-sync`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs scripts/hlf-sync with exactly this environment (plus PATH/HOME); output goes to the scan. */
async function cli(h: Harness | null, args: string[], env: Record<string, string>): Promise<Run> {
  const base: Record<string, string> = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    HOME: Deno.env.get("HOME") ?? "/root",
    NO_COLOR: "1",
    DENO_NO_UPDATE_CHECK: "1",
  };
  const denoDir = Deno.env.get("DENO_DIR");
  if (denoDir) base.DENO_DIR = denoDir;
  const out = await new Deno.Command(CLI, {
    args,
    cwd: ROOT,
    clearEnv: true,
    env: { ...base, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const run = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  h?.responses.push(run.stdout, run.stderr);
  return run;
}

/** What an operator's shell has for the function-backed commands. */
function opsEnv(h: Harness): Record<string, string> {
  return {
    HLF_FUNCTION_URL: h.functions[0].url,
    SUPABASE_SERVICE_ROLE_KEY: h.serviceRoleKey,
    DATABASE_URL: h.dbUrl,
  };
}

/** Break-glass: database and Dynamics credentials only; the function is unreachable. */
function breakGlassEnv(h: Harness, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: h.dbUrl,
    HLF_FUNCTION_URL: deadWebhookUrl(), // nothing listens: break-glass must not need it
    DENO_CERT: h.ca.caCertFile,
    DYNAMICS_BASE_URL: h.mock.baseUrl,
    DYNAMICS_TOKEN_URL: h.mock.tokenUrl,
    DYNAMICS_TENANT_ID: h.mock.tenantId,
    DYNAMICS_CLIENT_ID: h.mock.clientId,
    DYNAMICS_CLIENT_SECRET: h.clientSecret,
    BACKOFF_MULTIPLIER_MS: "10",
    BACKOFF_JITTER_MS: "5",
    ...extra,
  };
}

/** Asserts a failed run: this exit code and exactly one stderr line starting with `prefix`. */
function assertFailure(r: Run, code: number, prefix: string): void {
  assertEquals(r.code, code, `exit code; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split("\n");
  assertEquals(lines.length, 1, `one line: ${r.stderr}`);
  assert(lines[0].startsWith(`hlf-sync: ${prefix}`), `stderr: ${r.stderr}`);
}

suite.test("--help on the tool and on each command; usage errors exit 2", async (h) => {
  const commands = [
    "status",
    "sync",
    "process",
    "reconcile",
    "health",
    "dead-letter",
    "break-glass",
  ];
  const [top, bare, ...perCommand] = await Promise.all([
    cli(h, ["--help"], {}),
    cli(h, [], {}),
    ...commands.map((c) => cli(h, [c, "--help"], {})),
  ]);
  assertEquals([top.code, top.stderr], [0, ""]);
  assert(top.stdout.includes("usage: hlf-sync <command>"), top.stdout);
  for (const c of commands) assert(top.stdout.includes(`\n  ${c}`), `lists ${c}`);
  assert(/exit codes: 0 done, 1 operation failed, 2 usage error, 3 config/.test(top.stdout));
  assertEquals(bare.code, 2, "no command is a usage error");
  assert(bare.stdout.includes("usage: hlf-sync <command>"));
  perCommand.forEach((r, i) => {
    assertEquals([r.code, r.stderr], [0, ""], commands[i]);
    assert(r.stdout.startsWith(`usage: hlf-sync ${commands[i]}`), r.stdout);
  });

  const usage: [string[], string][] = [
    [["frobnicate"], "unknown command 'frobnicate'; see hlf-sync --help"],
    [["process", "--max", "nope"], "expected a positive integer, got 'nope'"],
    [["process", "--max"], "--max needs a value"],
    [["reconcile", "--limit", "0"], "expected a positive integer"],
    [["sync"], "sync needs a MENTOR_ID"],
    [["sync", "12; drop table x"], "'12; drop table x' is not a mentor ID"],
    [["status", "--mentor", "nope"], "'nope' is not a mentor ID"],
    [["dead-letter"], "usage: hlf-sync dead-letter list|redrive ID"],
    [["dead-letter", "redrive", "x"], "dead-letter redrive needs a numeric ID"],
    [["break-glass"], "break-glass needs exactly one of --all or --mentor ID"],
    [["break-glass", "--all", "--mentor", crypto.randomUUID()], "break-glass needs exactly one"],
  ];
  const runs = await Promise.all(usage.map(([args]) => cli(h, args, opsEnv(h))));
  runs.forEach((r, i) => {
    assertFailure(r, 2, usage[i][1]);
    assertEquals(r.stdout, "", usage[i][0].join(" "));
  });
  assertEquals(h.mock.requests.length, 0, "usage errors call nothing");
});

suite.test("missing or wrong configuration exits 3 with a one-line reason", async (h) => {
  const env = opsEnv(h);
  const { SUPABASE_SERVICE_ROLE_KEY: _key, ...noKey } = env;
  const { DATABASE_URL: _db, ...noDb } = env;
  const { DYNAMICS_CLIENT_SECRET: _secret, ...noSecret } = breakGlassEnv(h);
  const cases: [string[], Record<string, string>, string][] = [
    [["status"], noKey, "SUPABASE_SERVICE_ROLE_KEY is not set"],
    [["dead-letter", "list"], noDb, "DATABASE_URL is not set"],
    [["break-glass", "--all"], noSecret, "DYNAMICS_CLIENT_SECRET is not set"],
    [["health"], { ...env, HLF_FUNCTION_URL: deadWebhookUrl() }, "cannot reach the function at"],
    [
      ["health"],
      { ...env, SUPABASE_SERVICE_ROLE_KEY: randomSecret("wrong") },
      "UNAUTHORIZED (401)",
    ],
    [
      ["break-glass", "--all"],
      { ...breakGlassEnv(h), DYNAMICS_BASE_URL: "http://127.0.0.1:9/" },
      "CONFIGURATION: configuration error: DYNAMICS_BASE_URL must be an https:// URL",
    ],
  ];
  const runs = await Promise.all(cases.map(([args, e]) => cli(h, args, e)));
  runs.forEach((r, i) => assertFailure(r, 3, cases[i][2]));
  assertEquals(h.mock.requests.length, 0);
});

suite.test("status, sync, process and health: human output and --json", async (h) => {
  const o = await h.seedOrgs();
  const a = await h.mentor({ org: o.hlf, name: "Astrid Aas" });
  const b = await h.mentor({ org: o.hlf, name: "Bjørn Berg" });
  await h.setStatus(a.id, "paused");
  await h.setStatus(b.id, "paused");
  const env = opsEnv(h);

  const json = await cli(h, ["status", "--json"], env);
  assertEquals([json.code, json.stderr], [0, ""]);
  const mentors = (JSON.parse(json.stdout) as {
    mentors: { mentor_id: string; desired_visible: boolean; open_job: { status: string } }[];
  }).mentors;
  assertEquals(mentors.map((m) => m.mentor_id).sort(), [a.id, b.id].sort());
  for (const m of mentors) {
    assertEquals([m.desired_visible, m.open_job?.status], [false, "pending"]);
  }
  const human = await cli(h, ["status", "--mentor", a.id], env);
  assertEquals(human.code, 0);
  const lines = human.stdout.trimEnd().split("\n");
  assert(/^mentor\s+name\s+desired\s+synced\s+job\s+failure$/.test(lines[0]), lines[0]);
  assertEquals(lines.length, 3, "header, rule, one mentor");
  assert(lines[2].startsWith(a.id) && lines[2].includes("Astrid Aas"), lines[2]);
  assert(/false\s+true\s+pending/.test(lines[2]), lines[2]);

  const synced = await cli(h, ["sync", a.id], env);
  assertEquals([synced.code, synced.stdout, synced.stderr], [
    0,
    `synced: mentor ${a.id} visible=false\n`,
    "",
  ]);
  assertEquals(h.portalVisible(a.contactId), false);

  const processed = await cli(h, ["process", "--max", "10", "--json"], env);
  assertEquals(processed.code, 0, processed.stderr);
  assertEquals(JSON.parse(processed.stdout), { processed: 1, synced: 1, retrying: 0, dead: 0 });
  assertEquals(h.portalVisible(b.contactId), false);
  const idle = await cli(h, ["process"], env);
  assertEquals([idle.code, idle.stdout], [0, "processed=0 synced=0 retrying=0 dead=0\n"]);

  const health = await cli(h, ["health"], env);
  assertEquals([health.code, health.stdout], [0, "healthy: Dynamics accepted the credentials\n"]);
  const healthJson = await cli(h, ["health", "--json"], env);
  assertEquals([healthJson.code, JSON.parse(healthJson.stdout)], [0, { ok: true }]);
});

suite.test("a failing sync and a failing health check exit 1 with the function's error", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf });
  h.mock.setContactScenario(m.contactId, "404");
  await h.setStatus(m.id, "paused");
  const env = opsEnv(h);
  const failed = await cli(h, ["sync", m.id], env);
  assertFailure(failed, 1, "DYNAMICS_SYNC_FAILED (502): ");
  assertEquals(failed.stdout, "");
  assertEquals(h.portalVisible(m.contactId), true);
  const unknown = await cli(h, ["sync", crypto.randomUUID()], env);
  assertFailure(unknown, 1, "NOT_FOUND (404)");

  const rotated = randomSecret("e2e-rotated-secret");
  try {
    h.mock.setClientSecret(rotated);
    const sick = await cli(h, ["health"], env);
    assertFailure(sick, 1, "AUTH_FAILED (503)");
  } finally {
    h.mock.setClientSecret(h.clientSecret);
  }
  assertEquals((await h.alerts("auth_failure")).length, 1, "the alert was raised");
});

suite.test("reconcile: a progress line per invocation, dry run vs real, --json totals", async (h) => {
  const o = await h.seedOrgs();
  const mentors: { id: string; contactId: string }[] = [];
  for (let i = 0; i < 5; i++) {
    // The first two drifted on the portal after their last sync (someone edited Dynamics).
    mentors.push(
      await h.mentor({
        org: o.hlf,
        portalVisible: i < 2 ? false : undefined,
        lastSyncedVisible: i < 2 ? true : undefined,
      }),
    );
  }
  const env = opsEnv(h);
  const dry = await cli(h, ["reconcile", "--dry-run", "--limit", "2"], env);
  assertEquals(dry.code, 0, dry.stderr);
  // Pages follow mentor_id order, so where the two divergent mentors fall is up to their ids.
  assertEquals(
    dry.stderr.trimEnd().split("\n"),
    [2, 4, 5].map((checked, i) =>
      `reconcile: invocation ${i + 1}, checked ${checked}, divergent ${
        dryDivergent(mentors, checked)
      }, enqueued 0`
    ),
  );
  const out = dry.stdout.split("\n");
  assertEquals(out[0], "dry run: checked 5, divergent 2, enqueued 0");
  assert(out[1].startsWith("sync lag: none"), out[1]);
  assertEquals(await h.jobs(), [], "a dry run enqueues nothing");
  assertEquals(await h.alerts(), []);

  const real = await cli(h, ["reconcile", "--limit", "2", "--json"], env);
  assertEquals([real.code, real.stderr], [0, ""]);
  const body = JSON.parse(real.stdout);
  assertEquals(
    [body.checked, body.divergent, body.enqueued, body.invocations, body.dry_run],
    [5, 2, 2, 3, false],
  );
  assertEquals(body.sync_lag.mentors, 0);
  const queued = (await h.jobs()).map((j) => j.mentor_id).sort();
  assertEquals(queued, mentors.slice(0, 2).map((m) => m.id).sort());
});

/** Divergent mentors among the first `n` by id (the page order). */
function dryDivergent(mentors: { id: string }[], n: number): number {
  const divergent = new Set(mentors.slice(0, 2).map((m) => m.id));
  return [...mentors].sort((x, y) => x.id < y.id ? -1 : 1).slice(0, n)
    .filter((m) => divergent.has(m.id)).length;
}

suite.test("dead-letter list and redrive", async (h) => {
  const o = await h.seedOrgs();
  const m = await h.mentor({ org: o.hlf });
  h.mock.setContactScenario(m.contactId, { kind: "404", times: 1 });
  await h.setStatus(m.id, "paused");
  assertEquals((await h.processQueue()).dead, 1);
  const env = opsEnv(h);

  const list = await cli(h, ["dead-letter", "list", "--json"], env);
  assertEquals(list.code, 0, list.stderr);
  const [dl] = JSON.parse(list.stdout) as { id: string | number; mentor_id: string }[];
  assertEquals(dl.mentor_id, m.id);
  const id = Number(dl.id);
  const table = await cli(h, ["dead-letter", "list"], env);
  assert(/^id\s+job_id\s+mentor_id\s+operation\s+error_code/.test(table.stdout), table.stdout);
  assert(table.stdout.includes(m.id) && table.stdout.includes("NOT_FOUND"), table.stdout);

  const redrive = await cli(h, ["dead-letter", "redrive", String(id)], env);
  assertEquals(redrive.code, 0, redrive.stderr);
  const [job] = (await h.jobs(m.id)).filter((j) => j.status === "pending");
  assertEquals(redrive.stdout, `redriven: dead letter ${id} is job ${job.id}\n`);
  assertFailure(await cli(h, ["dead-letter", "redrive", String(id)], env), 1, "BAD_REQUEST (400)");
  const empty = await cli(h, ["dead-letter", "list"], env);
  assertEquals([empty.code, empty.stdout], [0, "no dead letters\n"]);
});

suite.test("break-glass --mentor and --all: environment credentials, no Vault, no function", async (h) => {
  const [vault] = await h.sql<{ n: number }[]>`
    select count(*)::int as n from vault.decrypted_secrets where name like 'dynamics_%'`;
  assertEquals(vault.n, 0, "Vault holds no Dynamics credentials");
  const o = await h.seedOrgs();
  const one = await h.mentor({ org: o.hlf });
  const rest = [
    await h.mentor({ org: o.hlf, status: "paused", portalVisible: true }),
    await h.mentor({ org: o.hlf, portalVisible: false }),
    await h.mentor({ org: o.hlf }),
  ];
  await h.setStatus(one.id, "paused");

  const single = await cli(h, ["break-glass", "--mentor", one.id], breakGlassEnv(h));
  assertEquals([single.code, single.stdout], [0, `break-glass: mentor ${one.id} synced\n`]);
  assertEquals(h.portalVisible(one.contactId), false);
  const [token] = h.tokenRequests();
  assert(token.body.includes(`client_id=${h.mock.clientId}`), "the env credentials were used");

  const all = await cli(h, ["break-glass", "--all"], breakGlassEnv(h));
  assertEquals(all.code, 0, all.stderr);
  const progress = all.stderr.trimEnd().split("\n");
  assert(progress.length >= 1, all.stderr);
  for (const line of progress) {
    assert(/^break-glass: \d+\/4 processed, \d+ synced, 0 retrying, 0 dead$/.test(line), line);
  }
  assertEquals(progress.at(-1), "break-glass: 4/4 processed, 4 synced, 0 retrying, 0 dead");
  assertEquals(h.portalVisible(rest[0].contactId), false);
  assertEquals(h.portalVisible(rest[1].contactId), true);
  assertEquals(h.portalVisible(rest[2].contactId), true);
  for (const m of [one, ...rest]) {
    assertEquals(await h.lastSyncedVisible(m.id), h.portalVisible(m.contactId));
  }
  assertEquals(
    (await h.jobs()).filter((j) => j.status !== "done"),
    [],
    "every job finished",
  );

  const wrongSecret = randomSecret("e2e-wrong-secret");
  const wrong = await cli(
    h,
    ["break-glass", "--mentor", one.id],
    breakGlassEnv(h, { DYNAMICS_CLIENT_SECRET: wrongSecret }),
  );
  assertFailure(wrong, 1, "DYNAMICS_SYNC_FAILED (502)");
  assertEquals(wrong.stdout, "");
  const verbose = await cli(
    h,
    ["break-glass", "--mentor", one.id, "--verbose"],
    breakGlassEnv(h, { DYNAMICS_CLIENT_SECRET: wrongSecret }),
  );
  assertEquals([verbose.code, verbose.stdout], [1, ""]);
  const logLines = verbose.stderr.trimEnd().split("\n");
  assert(logLines.length > 1, "--verbose shows the sync's log lines");
  assert(logLines.slice(0, -1).every((l) => JSON.parse(l).event), verbose.stderr);
  assert(logLines.some((l) => l.includes('"event":"sync_mentor"')), verbose.stderr);
  assertEquals(await h.secretFindings([wrongSecret]), []);
});

suite.test("break-glass --all: a dead letter exits 1, its alert is delivered before exit", async (h) => {
  const receiver = startWebhookReceiver();
  try {
    const o = await h.seedOrgs();
    const ok = await h.mentor({ org: o.hlf, status: "paused", portalVisible: true });
    const gone = await h.mentor({ org: o.hlf, status: "paused", portalVisible: true });
    h.mock.setContactScenario(gone.contactId, "404");
    const r = await cli(
      h,
      ["break-glass", "--all", "--json"],
      breakGlassEnv(h, { ALERT_WEBHOOK_URL: receiver.url }),
    );
    assertEquals(r.code, 1, r.stderr);
    assertEquals(JSON.parse(r.stdout), {
      mentors: 2,
      processed: 2,
      synced: 1,
      retrying: 0,
      dead: 1,
    });
    assertEquals(h.portalVisible(ok.contactId), false);
    const [alert] = await h.alerts("dead_letter");
    assertEquals(
      receiver.delivered().map((x) => [x.json?.alert_id, x.json?.kind, x.json?.mentor_id]),
      [[alert.id, "dead_letter", gone.id]],
      "delivered before the process exited",
    );
  } finally {
    await receiver.close();
  }
});

suite.finish();
