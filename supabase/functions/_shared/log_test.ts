import { assertEquals } from "../../../tests/assert.ts";
import { describe, redact, registerSecret } from "./log.ts";

Deno.test("redact removes registered secrets and any bearer credential", () => {
  registerSecret("registered-secret-value");
  const out = redact('secret registered-secret-value and "Authorization: Bearer abc.def.ghi"');
  assertEquals(out.includes("registered-secret-value"), false, out);
  assertEquals(out.includes("abc.def.ghi"), false, out);
  assertEquals(out.includes("[REDACTED]"), true, out);
});

Deno.test("describe gives one safe line without a stack", () => {
  registerSecret("another-secret-value");
  const text = describe(new TypeError("boom another-secret-value"));
  assertEquals(text, "TypeError: boom [REDACTED]");
});

Deno.test("a quoted bearer credential is redacted too", () => {
  const out = redact(`Authorization: Bearer "quoted.token.value"`);
  assertEquals(out.includes("quoted.token.value"), false, out);
});
