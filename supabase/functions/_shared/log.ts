// Structured logs an operator can read: one JSON object per line on stdout/stderr, with every
// registered secret (client secret, service key, tokens seen) scrubbed before it is written.

type Level = "debug" | "info" | "warn" | "error";

const secrets = new Set<string>();

/** Registers a value that must never appear in a log line (ignored when shorter than 6 chars). */
export function registerSecret(value: string | undefined | null): void {
  if (value && value.length >= 6) secrets.add(value);
}

/** Removes registered secrets and bearer credentials from text. */
export function redact(text: string): string {
  let out = text;
  for (const s of secrets) {
    if (out.includes(s)) out = out.split(s).join("[REDACTED]");
  }
  return out.replace(/(bearer\s+["']?)[^\s"',]+/gi, "$1[REDACTED]");
}

export type LogWriter = (level: Level, line: string) => void;

const defaultWriter: LogWriter = (level, line) => {
  if (level === "error" || level === "warn") console.error(line);
  else console.log(line);
};
let writer: LogWriter = defaultWriter;

/** Where log lines go (already redacted); the CLI keeps them off stdout. Null restores stdout/stderr. */
export function setLogWriter(w: LogWriter | null): void {
  writer = w ?? defaultWriter;
}

export function log(level: Level, event: string, fields: Record<string, unknown> = {}): void {
  writer(level, redact(JSON.stringify({ ts: new Date().toISOString(), level, event, ...fields })));
}

/** A short, safe description of an unknown thrown value (no stack). */
export function describe(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return redact(text).slice(0, 500);
}
