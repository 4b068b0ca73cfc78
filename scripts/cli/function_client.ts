// Calls the deployed function as the service (HLF_FUNCTION_URL + SUPABASE_SERVICE_ROLE_KEY).
export const DEFAULT_FUNCTION_URL = "http://127.0.0.1:54321/functions/v1/hlf-dynamics-sync";

/** A non-2xx answer of the function, with its error code. */
export class FunctionError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(`${code} (${status}): ${message}`);
  }
}

export async function callFunction(body: Record<string, unknown>): Promise<unknown> {
  const url = Deno.env.get("HLF_FUNCTION_URL") ?? DEFAULT_FUNCTION_URL;
  const key = Deno.env.get("SUPABASE_SERVICE_ROLE_KEY");
  if (!key) throw new Error("SUPABASE_SERVICE_ROLE_KEY is not set");
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (e) {
    throw new Error(`cannot reach the function at ${url}: ${e instanceof Error ? e.message : e}`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new FunctionError(res.status, "INVALID_ANSWER", text.slice(0, 200));
  }
  if (!res.ok) {
    const err = (parsed as { error?: { code?: string; message?: string } }).error ?? {};
    throw new FunctionError(res.status, err.code ?? "UNKNOWN", err.message ?? text.slice(0, 200));
  }
  return parsed;
}
