// HTTP plumbing: the error envelope {"error":{"code","message"}}, JSON answers, and a request body
// reader that enforces the 64 KiB limit while streaming (a lying Content-Length cannot bypass it).

export type ErrorCode =
  | "BAD_REQUEST"
  | "UNAUTHORIZED"
  | "FORBIDDEN"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "PAYLOAD_TOO_LARGE"
  | "DYNAMICS_SYNC_FAILED"
  | "AUTH_FAILED"
  | "DYNAMICS_UNAVAILABLE"
  | "INTERNAL";

const STATUS: Record<ErrorCode, number> = {
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

/** The most a request body may hold. */
export const MAX_BODY_BYTES = 64 * 1024;

/** An error that becomes an HTTP answer; `details` is merged into the error object. */
export class HttpError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.status = STATUS[code];
  }
}

export function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

export function errorResponse(error: HttpError): Response {
  const extra: HeadersInit = error.code === "METHOD_NOT_ALLOWED" ? { allow: "GET, POST" } : {};
  return json(
    error.status,
    { error: { code: error.code, message: error.message, ...error.details } },
    extra,
  );
}

/** Reads and parses a JSON object body: 413 past the limit, 400 when empty, not JSON, or not an object. */
export async function readJsonObject(
  req: Request,
  limit = MAX_BODY_BYTES,
): Promise<Record<string, unknown>> {
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > limit) {
    await discard(req.body?.getReader());
    throw tooLarge(limit);
  }
  const bytes = await readLimited(req, limit);
  const text = new TextDecoder().decode(bytes).trim();
  if (text === "") {
    throw new HttpError("BAD_REQUEST", "the request body is empty; send a JSON object");
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError("BAD_REQUEST", "the request body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new HttpError("BAD_REQUEST", "the request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}

async function readLimited(req: Request, limit: number): Promise<Uint8Array> {
  if (!req.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await discard(reader);
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** Past this much, an oversized body is not read any further: the connection is dropped. */
const DISCARD_LIMIT_BYTES = 1024 * 1024;

/**
 * Reads and throws away the rest of an oversized body (up to DISCARD_LIMIT_BYTES) before the 413
 * goes out: answering while the client is still sending makes the server close the connection,
 * and the client then sees a broken pipe instead of the 413.
 */
async function discard(reader: ReadableStreamDefaultReader<Uint8Array> | undefined) {
  if (!reader) return;
  try {
    let size = 0;
    while (size <= DISCARD_LIMIT_BYTES) {
      const { done, value } = await reader.read();
      if (done) return;
      size += value.byteLength;
    }
    await reader.cancel();
  } catch {
    // The client went away; the answer is moot.
  }
}

function tooLarge(limit: number): HttpError {
  return new HttpError("PAYLOAD_TOO_LARGE", `the request body exceeds ${limit} bytes`);
}
