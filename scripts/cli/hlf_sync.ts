// hlf-sync: the operator CLI. Read commands talk to the deployed function (HLF_FUNCTION_URL +
// SUPABASE_SERVICE_ROLE_KEY) or the database (DATABASE_URL); break-glass runs the sync in this
// process with the same modules and wasm core as the function, with credentials from this
// environment instead of Vault.
//
// Exit codes: 0 done · 1 the operation failed (sync failed, unhealthy, redrive refused, break-glass
// left failed jobs) · 2 usage error · 3 configuration or connection error. Log lines of the shared
// modules never reach stdout (--verbose shows them on stderr). Runbook: docs/operations.md.
import {
  type LagReport,
  processorDeps,
  runAction,
} from "../../supabase/functions/_shared/actions.ts";
import type { Context } from "../../supabase/functions/_shared/context.ts";
import { createContext } from "../../supabase/functions/_shared/context.ts";
import { connect } from "../../supabase/functions/_shared/db.ts";
import { HttpError } from "../../supabase/functions/_shared/http.ts";
import { setLogWriter } from "../../supabase/functions/_shared/log.ts";
import { processQueue } from "../../supabase/functions/_shared/processor.ts";
import { loadSettings, SettingsError } from "../../supabase/functions/_shared/settings.ts";
import { isUuid } from "../../supabase/functions/_shared/validate.ts";
import { callFunction, FunctionError } from "./function_client.ts";
import { printTable } from "./format.ts";

export const EXIT = { ok: 0, failed: 1, usage: 2, config: 3 } as const;

class UsageError extends Error {}

const HELP: Record<string, string> = {
  "": `hlf-sync — operate the HLF Dynamics portal sync

usage: hlf-sync <command> [options]

commands:
  status [--mentor ID] [--json]        desired vs last synced visibility, open jobs and failures
  sync MENTOR_ID [--json]              force sync one mentor now (3 attempts)
  process [--max N] [--json]           drain due jobs
  reconcile [--dry-run] [--limit N] [--json]
                                       compare the portal with the database, re-queue divergent
                                       mentors, report the sync lag
  health [--json]                      credential check: fresh token + WhoAmI
  dead-letter list [--json]            dead letters not yet redriven
  dead-letter redrive ID [--json]      requeue a dead letter
  break-glass --all|--mentor ID [--json] [--verbose]
                                       sync with credentials from this environment, bypassing
                                       Vault (--verbose: the sync's log lines on stderr)

environment:
  HLF_FUNCTION_URL           function URL (default http://127.0.0.1:54321/functions/v1/hlf-dynamics-sync)
  SUPABASE_SERVICE_ROLE_KEY  service bearer for the function
  DATABASE_URL               database (dead-letter list, break-glass)
  break-glass also needs DYNAMICS_BASE_URL, DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID,
  DYNAMICS_CLIENT_SECRET (and DYNAMICS_TOKEN_URL / DYNAMICS_SCOPE when not Azure AD defaults)

exit codes: 0 done, 1 operation failed, 2 usage error, 3 configuration or connection error
run 'hlf-sync <command> --help' for one command`,
  status:
    "usage: hlf-sync status [--mentor ID] [--json]\n  per mentor: desired and last synced visibility, open job, open failure",
  sync:
    "usage: hlf-sync sync MENTOR_ID [--json]\n  force sync through the function; exit 1 when Dynamics could not be updated",
  process: "usage: hlf-sync process [--max N] [--json]\n  drain up to N due jobs (default 100)",
  reconcile:
    "usage: hlf-sync reconcile [--dry-run] [--limit N] [--json]\n  reads the portal in pages and re-queues divergent mentors; --dry-run changes nothing.\n  Resumable: each function invocation checks at most N mentors (default 5000) and the CLI\n  follows the cursor, printing a progress line per invocation on stderr. Also reports the\n  sync lag: mentors whose last synced visibility differs from the desired one, and since when.",
  health:
    "usage: hlf-sync health [--json]\n  exit 0 when Dynamics accepts the credentials, 1 otherwise",
  "dead-letter":
    "usage: hlf-sync dead-letter list [--json]\n       hlf-sync dead-letter redrive ID [--json]",
  "break-glass":
    "usage: hlf-sync break-glass --all | --mentor ID [--json] [--verbose]\n  runs the sync in this process with DYNAMICS_* credentials from the environment (never Vault);\n  for when the function or Vault is down. Needs DATABASE_URL and DYNAMICS_BASE_URL.",
};

interface Args {
  command: string;
  positional: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(argv: string[]): Args {
  const flags = new Map<string, string | true>();
  const positional: string[] = [];
  const valued = new Set(["--mentor", "--max", "--limit"]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-h") flags.set("--help", true);
    else if (a.startsWith("--")) {
      const [name, inline] = a.split("=", 2);
      if (valued.has(name)) {
        const v = inline ?? argv[++i];
        if (v === undefined) throw new UsageError(`${name} needs a value`);
        flags.set(name, v);
      } else flags.set(name, true);
    } else positional.push(a);
  }
  return { command: positional.shift() ?? "", positional, flags };
}

async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const json = args.flags.has("--json");
  // The shared modules log JSON lines (break-glass): never on stdout, on stderr with --verbose.
  const verbose = args.flags.has("--verbose");
  setLogWriter((_level, line) => verbose && console.error(line));
  if (args.flags.has("--help") || args.command === "" || args.command === "help") {
    console.log(HELP[args.command] ?? HELP[""]);
    return args.command === "" && !args.flags.has("--help") ? EXIT.usage : EXIT.ok;
  }
  const out = (value: unknown, human: () => void) =>
    json ? console.log(JSON.stringify(value, null, 2)) : human();
  switch (args.command) {
    case "status": {
      const mentor = mentorId(args.flags.get("--mentor"), true);
      const body = await callFunction({
        action: "status",
        ...(mentor ? { mentor_ids: [mentor] } : {}),
      });
      const mentors = (body as { mentors: Record<string, unknown>[] }).mentors;
      out(body, () =>
        printTable(mentors.map((m) => ({
          mentor: m.mentor_id,
          name: m.full_name,
          desired: m.desired_visible,
          synced: m.last_synced_visible,
          job: (m.open_job as { status?: string } | null)?.status ?? "",
          failure: (m.open_failure as { error_code?: string } | null)?.error_code ?? "",
        }))));
      return EXIT.ok;
    }
    case "sync": {
      const id = mentorId(args.positional[0], false, "sync needs a MENTOR_ID");
      const body = await callFunction({ action: "sync_mentor", mentor_id: id });
      out(
        body,
        () => console.log(`synced: mentor ${id} visible=${(body as { visible: boolean }).visible}`),
      );
      return EXIT.ok;
    }
    case "process": {
      const max = int(args.flags.get("--max"), 100);
      const body = await callFunction({ action: "process_queue", max_jobs: max });
      out(
        body,
        () => console.log(Object.entries(body as object).map(([k, v]) => `${k}=${v}`).join(" ")),
      );
      return EXIT.ok;
    }
    case "reconcile":
      return await reconcile(
        args.flags.has("--dry-run"),
        intOrUndefined(args.flags.get("--limit")),
        json,
      );
    case "health": {
      const body = await callFunction({ action: "health" });
      out(body, () => console.log("healthy: Dynamics accepted the credentials"));
      return EXIT.ok;
    }
    case "dead-letter":
      return await deadLetter(args, json);
    case "break-glass":
      return await breakGlass(args, json);
    default:
      throw new UsageError(`unknown command '${args.command}'; see hlf-sync --help`);
  }
}

async function reconcile(
  dryRun: boolean,
  limit: number | undefined,
  json: boolean,
): Promise<number> {
  let cursor: string | null = null;
  const total = { checked: 0, divergent: 0, enqueued: 0, invocations: 0 };
  const lag: LagReport = { mentors: 0, max_lag_seconds: null, oldest_since: null, worst: [] };
  for (let round = 1;; round++) {
    const body = await callFunction({
      action: "reconcile",
      dry_run: dryRun,
      ...(cursor ? { cursor } : {}),
      ...(limit ? { limit } : {}),
    }) as {
      checked: number;
      divergent: number;
      enqueued: number;
      next_cursor: string | null;
      sync_lag?: LagReport;
    };
    total.invocations = round;
    total.checked += body.checked;
    total.divergent += body.divergent;
    total.enqueued += body.enqueued;
    if (body.sync_lag) mergeLag(lag, body.sync_lag);
    if (!json) {
      console.error(
        `reconcile: invocation ${round}, checked ${total.checked}, divergent ${total.divergent}, enqueued ${total.enqueued}`,
      );
    }
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  const result = { ...total, dry_run: dryRun, sync_lag: lag };
  if (json) console.log(JSON.stringify(result, null, 2));
  else {
    console.log(
      `${
        dryRun ? "dry run: " : ""
      }checked ${total.checked}, divergent ${total.divergent}, enqueued ${total.enqueued}`,
    );
    console.log(
      lag.mentors === 0
        ? "sync lag: none (every mentor's last sync matches the desired visibility)"
        : `sync lag: ${lag.mentors} mentor(s) not yet synced to the desired visibility; longest ${
          lag.max_lag_seconds === null ? "unknown" : `${lag.max_lag_seconds} s`
        }${lag.oldest_since ? ` (since ${lag.oldest_since})` : ""}`,
    );
    if (lag.worst.length > 0) {
      printTable(lag.worst.map((w) => ({
        mentor: w.mentor_id,
        desired: w.desired_visible,
        synced: w.last_synced_visible,
        lag_s: w.lag_seconds,
      })));
    }
  }
  return EXIT.ok;
}

function mergeLag(into: LagReport, page: LagReport): void {
  into.mentors += page.mentors;
  if (
    page.max_lag_seconds !== null &&
    (into.max_lag_seconds === null || page.max_lag_seconds > into.max_lag_seconds)
  ) {
    into.max_lag_seconds = page.max_lag_seconds;
    into.oldest_since = page.oldest_since;
  }
  into.worst = [...into.worst, ...page.worst]
    .sort((a, b) => (b.lag_seconds ?? -1) - (a.lag_seconds ?? -1))
    .slice(0, 10);
}

async function deadLetter(args: Args, json: boolean): Promise<number> {
  const sub = args.positional[0];
  if (sub === "redrive") {
    const id = Number(args.positional[1]);
    if (!Number.isInteger(id) || id < 1) {
      throw new UsageError("dead-letter redrive needs a numeric ID");
    }
    const body = await callFunction({ action: "redrive", dead_letter_id: id });
    if (json) console.log(JSON.stringify(body, null, 2));
    else console.log(`redriven: dead letter ${id} is job ${(body as { job_id: number }).job_id}`);
    return EXIT.ok;
  }
  if (sub !== "list") throw new UsageError("usage: hlf-sync dead-letter list|redrive ID");
  const sql = connect(requireEnv("DATABASE_URL"), 1);
  try {
    const rows = await sql`
      select id, job_id, mentor_id, operation, error_code, reason, created_at
        from public.dead_letter_queue where redriven_at is null order by id`;
    if (json) console.log(JSON.stringify(rows, null, 2));
    else if (rows.length === 0) console.log("no dead letters");
    else printTable(rows.map((r) => ({ ...r, created_at: (r.created_at as Date).toISOString() })));
    return EXIT.ok;
  } finally {
    await sql.end();
  }
}

async function breakGlass(args: Args, json: boolean): Promise<number> {
  const mentor = mentorId(args.flags.get("--mentor"), true);
  const all = args.flags.has("--all");
  if (all === Boolean(mentor)) {
    throw new UsageError("break-glass needs exactly one of --all or --mentor ID");
  }
  for (
    const n of [
      "DYNAMICS_BASE_URL",
      "DYNAMICS_TENANT_ID",
      "DYNAMICS_CLIENT_ID",
      "DYNAMICS_CLIENT_SECRET",
    ]
  ) {
    requireEnv(n);
  }
  const dbUrl = requireEnv("DATABASE_URL");
  // The function's settings, with the service/JWT secrets (unused here) filled with a random value.
  const unused = crypto.randomUUID();
  const settings = loadSettings((name) =>
    name === "SUPABASE_DB_URL"
      ? dbUrl
      : name === "SUPABASE_SERVICE_ROLE_KEY" || name === "SUPABASE_JWT_SECRET"
      ? unused
      : Deno.env.get(name)
  );
  const ctx = createContext(settings);
  try {
    if (mentor) {
      const answer = await runAction(ctx, { kind: "service" }, {
        action: "sync_mentor",
        mentorId: mentor,
      });
      if (json) console.log(JSON.stringify(answer.body, null, 2));
      else console.log(`break-glass: mentor ${mentor} synced`);
      return EXIT.ok;
    }
    return await breakGlassAll(ctx, json);
  } finally {
    await ctx.alerts.flush(); // deliver the alerts this run raised before the process exits
    await ctx.sql.end();
  }
}

async function breakGlassAll(ctx: Context, json: boolean): Promise<number> {
  const mentors = await ctx.sql<{ mentor_id: string }[]>`
    select m.mentor_id from public.mentor_dynamics_contacts m
      join public.peer_mentors p on p.id = m.mentor_id
     where public.org_sync_enabled(p.organization_id)`;
  for (const m of mentors) {
    await ctx.sql`select public.sync_enqueue(${m.mentor_id}::uuid, 'manual_coordinator_action')`;
  }
  const total = { mentors: mentors.length, processed: 0, synced: 0, retrying: 0, dead: 0 };
  const client = await ctx.client();
  for (;;) {
    const s = await processQueue(processorDeps(ctx, client), {
      maxJobs: 500,
      deadlineMs: Date.now() + 600_000,
    });
    total.processed += s.processed;
    total.synced += s.synced;
    total.retrying += s.retrying;
    total.dead += s.dead;
    if (!json) {
      console.error(
        `break-glass: ${total.processed}/${total.mentors} processed, ${total.synced} synced, ${total.retrying} retrying, ${total.dead} dead`,
      );
    }
    if (s.processed === 0 || s.authFailures > 0) break;
  }
  if (json) console.log(JSON.stringify(total, null, 2));
  return total.retrying + total.dead > 0 ? EXIT.failed : EXIT.ok;
}

function requireEnv(name: string): string {
  const v = Deno.env.get(name)?.trim();
  if (!v) throw new SettingsError(`${name} is not set`);
  return v;
}

/** A mentor id argument: a UUID (a usage error otherwise); undefined only when optional. */
function mentorId(v: string | true | undefined, optional: true): string | undefined;
function mentorId(v: string | true | undefined, optional: false, missing: string): string;
function mentorId(
  v: string | true | undefined,
  optional: boolean,
  missing = "a mentor ID is needed",
): string | undefined {
  if (v === undefined && optional) return undefined;
  if (typeof v !== "string" || v === "") throw new UsageError(missing);
  if (!isUuid(v)) throw new UsageError(`'${String(v).slice(0, 40)}' is not a mentor ID (a UUID)`);
  return v.toLowerCase();
}

function intOrUndefined(v: string | true | undefined): number | undefined {
  return v === undefined ? undefined : int(v, 0);
}

function int(v: string | true | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`expected a positive integer, got '${v}'`);
  }
  return n;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    // Break-glass failures read like the function's: "CODE (status): message".
    const message = e instanceof HttpError
      ? `${e.code} (${e.status}): ${e.message}`
      : e instanceof Error
      ? e.message
      : String(e);
    if (e instanceof UsageError) code = EXIT.usage;
    else if (e instanceof FunctionError) code = e.status === 401 ? EXIT.config : EXIT.failed;
    else if (e instanceof HttpError) code = EXIT.failed; // break-glass: the sync itself failed
    else code = EXIT.config;
    console.error(`hlf-sync: ${message.split("\n")[0]}`);
  }
  Deno.exit(code);
}
