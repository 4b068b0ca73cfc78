/**
 * Runs the Dynamics mock standalone (scripts/dev.sh, benchmarks, end-to-end tests that run the
 * function as its own process). Generates a throwaway CA in --cert-dir, starts the mock with the
 * control API under /__mock/, prints one JSON line
 * `{"baseUrl","tokenUrl","caCertFile","tenantId","clientId","scope","port"}` and serves until
 * SIGINT/SIGTERM.
 *
 *   deno run -A supabase/tests/mock/main.ts --port 0 --cert-dir /tmp/mock-certs \
 *     [--contacts N | --contacts-file FILE] [--scenario KIND|JSON] [--latency-ms N] \
 *     [--limiter R/W[ms|s][/C]] [--tenant-id T] [--client-id C] [--visibility-field F] \
 *     [--token-lifetime SECONDS] [--record-limit N (default 100000)]
 *
 * The client secret comes from $DYNAMICS_MOCK_CLIENT_SECRET (or --client-secret; the environment
 * keeps it out of `ps`); default DEFAULT_CLIENT_SECRET.
 */

import { generateTestCa } from "./certs.ts";
import { startDynamicsMock } from "./dynamics_mock.ts";
import type { DynamicsMockOptions } from "./dynamics_mock.ts";
import { parseLimiterSpec } from "./limiter.ts";
import type { LimiterConfig } from "./limiter.ts";
import { demoContactId } from "./portal_state.ts";
import { parseScenario } from "./scenarios.ts";
import type { Scenario } from "./scenarios.ts";

/** Recorded requests kept by the standalone mock (long benchmark runs stay bounded). */
export const DEFAULT_RECORD_LIMIT = 100_000;

export interface CliOptions {
  port: number;
  certDir: string;
  contacts?: number;
  contactsFile?: string;
  scenario?: Scenario;
  latencyMs?: number;
  limiter?: LimiterConfig;
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  visibilityField?: string;
  tokenLifetimeSeconds?: number;
  recordLimit: number;
}

const FLAGS = [
  "port",
  "cert-dir",
  "contacts",
  "contacts-file",
  "scenario",
  "latency-ms",
  "limiter",
  "tenant-id",
  "client-id",
  "client-secret",
  "visibility-field",
  "token-lifetime",
  "record-limit",
] as const;
type Flag = typeof FLAGS[number];

function isFlag(name: string): name is Flag {
  return (FLAGS as readonly string[]).includes(name);
}

/** `--name value` / `--name=value` pairs; throws on unknown flags or missing values. */
export function parseFlags(args: readonly string[]): Partial<Record<Flag, string>> {
  const out: Partial<Record<Flag, string>> = {};
  for (let i = 0; i < args.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(args[i]);
    if (!m || !isFlag(m[1])) throw new Error(`unknown argument ${args[i]}`);
    const value = m[2] ?? args[++i];
    if (value === undefined) throw new Error(`--${m[1]} needs a value`);
    out[m[1]] = value;
  }
  return out;
}

function integer(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
  return n;
}

function scenarioArg(value: string | undefined): Scenario | undefined {
  if (value === undefined) return undefined;
  return parseScenario(value.trimStart().startsWith("{") ? JSON.parse(value) : value);
}

/** Parses the command line into options; throws with a one-line reason. */
export function parseCliArgs(
  args: readonly string[],
  env: Record<string, string | undefined> = {},
): CliOptions {
  const f = parseFlags(args);
  if (f["cert-dir"] === undefined) throw new Error("--cert-dir DIR is required");
  if (f.contacts !== undefined && f["contacts-file"] !== undefined) {
    throw new Error("--contacts and --contacts-file exclude each other");
  }
  const opts: CliOptions = {
    port: integer(f.port, "port") ?? 0,
    certDir: f["cert-dir"],
    recordLimit: integer(f["record-limit"], "record-limit") ?? DEFAULT_RECORD_LIMIT,
  };
  const set = <K extends keyof CliOptions>(key: K, value: CliOptions[K] | undefined) => {
    if (value !== undefined) opts[key] = value;
  };
  set("contacts", integer(f.contacts, "contacts"));
  set("contactsFile", f["contacts-file"]);
  set("scenario", scenarioArg(f.scenario));
  set("latencyMs", integer(f["latency-ms"], "latency-ms"));
  set("limiter", f.limiter === undefined ? undefined : parseLimiterSpec(f.limiter));
  set("tenantId", f["tenant-id"]);
  set("clientId", f["client-id"]);
  set("clientSecret", f["client-secret"] ?? env.DYNAMICS_MOCK_CLIENT_SECRET);
  set("visibilityField", f["visibility-field"]);
  set("tokenLifetimeSeconds", integer(f["token-lifetime"], "token-lifetime"));
  return opts;
}

type ContactSeed = string | { id: string; visible?: boolean };

/** A contacts file: a JSON array of ids or {id, visible}, or one id per line (# comments). */
export function parseContactsFile(text: string): ContactSeed[] {
  if (text.trimStart().startsWith("[")) {
    const value: unknown = JSON.parse(text);
    if (!Array.isArray(value)) throw new Error("contacts file: expected a JSON array");
    return value.map((v): ContactSeed => {
      if (typeof v === "string") return v;
      if (typeof v === "object" && v !== null && typeof v.id === "string") {
        return { id: v.id, visible: v.visible === true };
      }
      throw new Error("contacts file: entries must be ids or {id, visible}");
    });
  }
  return text.split("\n").map((l) => l.replace(/#.*/, "").trim()).filter((l) => l !== "");
}

async function contactSeeds(opts: CliOptions): Promise<ContactSeed[]> {
  if (opts.contactsFile !== undefined) {
    return parseContactsFile(await Deno.readTextFile(opts.contactsFile));
  }
  return Array.from({ length: opts.contacts ?? 0 }, (_, i) => demoContactId(i + 1));
}

export async function mockOptionsFrom(opts: CliOptions, certPem: string, keyPem: string) {
  const mockOpts: DynamicsMockOptions = {
    certPem,
    keyPem,
    port: opts.port,
    contacts: await contactSeeds(opts),
    controlApi: true,
    recordLimit: opts.recordLimit,
    tenantId: opts.tenantId,
    clientId: opts.clientId,
    clientSecret: opts.clientSecret,
    visibilityField: opts.visibilityField,
    tokenLifetimeSeconds: opts.tokenLifetimeSeconds,
    latencyMs: opts.latencyMs,
    limiter: opts.limiter,
    scenario: opts.scenario,
  };
  return mockOpts;
}

async function main(): Promise<void> {
  let opts: CliOptions;
  try {
    opts = parseCliArgs(Deno.args, Deno.env.toObject());
  } catch (e) {
    console.error(`dynamics mock: ${e instanceof Error ? e.message : e}`);
    Deno.exit(2);
  }
  const ca = await generateTestCa(opts.certDir);
  const mock = await startDynamicsMock(await mockOptionsFrom(opts, ca.certPem, ca.keyPem));
  const stop = async () => {
    await mock.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  console.log(JSON.stringify({
    baseUrl: mock.baseUrl,
    tokenUrl: mock.tokenUrl,
    caCertFile: ca.caCertFile,
    tenantId: mock.tenantId,
    clientId: mock.clientId,
    scope: mock.scope,
    port: mock.port,
  }));
}

if (import.meta.main) await main();
