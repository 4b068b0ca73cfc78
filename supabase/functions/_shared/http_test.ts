import { assertEquals, assertRejects } from "../../../tests/assert.ts";
import { errorResponse, HttpError, readJsonObject } from "./http.ts";

const post = (body: BodyInit | null, headers: HeadersInit = {}) =>
  new Request("http://x/functions/v1/hlf-dynamics-sync", { method: "POST", body, headers });

Deno.test("errors render as the contract's envelope with the mapped status", async () => {
  const res = errorResponse(new HttpError("PAYLOAD_TOO_LARGE", "too big"));
  assertEquals(res.status, 413);
  assertEquals(await res.json(), { error: { code: "PAYLOAD_TOO_LARGE", message: "too big" } });
  assertEquals(
    errorResponse(new HttpError("METHOD_NOT_ALLOWED", "no")).headers.get("allow"),
    "GET, POST",
  );
});

Deno.test("readJsonObject returns an object and rejects everything else", async () => {
  assertEquals(await readJsonObject(post('{"action":"health"}')), { action: "health" });
  for (const body of ["", "   ", "not json", "[1,2]", "null", "42", '"s"']) {
    const err = await assertRejects(() => readJsonObject(post(body)));
    assertEquals((err as HttpError).code, "BAD_REQUEST", body);
  }
});

Deno.test("readJsonObject enforces the limit while streaming, whatever Content-Length says", async () => {
  const big = JSON.stringify({ action: "health", pad: "x".repeat(100) });
  const err = await assertRejects(() => readJsonObject(post(big), 64));
  assertEquals((err as HttpError).code, "PAYLOAD_TOO_LARGE");
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < 10; i++) c.enqueue(new TextEncoder().encode("x".repeat(20)));
      c.close();
    },
  });
  const err2 = await assertRejects(() =>
    readJsonObject(post(stream, { "content-length": "5" }), 64)
  );
  assertEquals((err2 as HttpError).code, "PAYLOAD_TOO_LARGE");
});
