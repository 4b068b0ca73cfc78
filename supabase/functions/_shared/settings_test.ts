import { assertEquals, assertThrows } from "../../../tests/assert.ts";
import { loadSettings } from "./settings.ts";

const base: Record<string, string> = {
  SUPABASE_DB_URL: "postgres://u@127.0.0.1:5432/db",
  SUPABASE_SERVICE_ROLE_KEY: "service-key-value",
  SUPABASE_JWT_SECRET: "jwt-secret-value-0123456789",
};
const env = (extra: Record<string, string> = {}) => (n: string) => ({ ...base, ...extra })[n];

Deno.test("defaults follow the contract", () => {
  const s = loadSettings(env());
  assertEquals(
    [
      s.backoffBaseMs,
      s.backoffJitterMs,
      s.timeoutMs,
      s.queueRetryBaseMs,
      s.maxAttempts,
      s.leaseSeconds,
    ],
    [2000, 500, 10000, 60000, 8, 180],
  );
  assertEquals(s.visibilityField, "hlf_portalvisible");
  assertEquals(s.envCredentials, undefined);
});

Deno.test("a non-https Dynamics URL is refused at start, naming the variable", () => {
  const err = assertThrows(() => loadSettings(env({ DYNAMICS_BASE_URL: "http://org.example" })));
  assertEquals(err.message.includes("DYNAMICS_BASE_URL"), true, err.message);
  assertThrows(() =>
    loadSettings(
      env({ DYNAMICS_BASE_URL: "https://org.example", DYNAMICS_TOKEN_URL: "http://aad/x" }),
    )
  );
});

Deno.test("missing or malformed settings fail with the variable's name and never its value", () => {
  assertThrows(() => loadSettings(env({ SUPABASE_DB_URL: "" })), "SUPABASE_DB_URL");
  assertThrows(() => loadSettings(env({ BACKOFF_MULTIPLIER_MS: "fast" })), "BACKOFF_MULTIPLIER_MS");
  assertThrows(() => loadSettings(env({ HLF_SYNC_MAX_ATTEMPTS: "0" })), "HLF_SYNC_MAX_ATTEMPTS");
  const err = assertThrows(() =>
    loadSettings(env({ DYNAMICS_CLIENT_SECRET: "only-the-secret-123" }))
  );
  assertEquals(err.message.includes("only-the-secret-123"), false, err.message);
});
