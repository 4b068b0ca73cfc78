/** The standalone CLI: argument parsing, and a real run as its own process. */

import { assert, assertEquals, assertThrows } from "./assert.ts";
import { parseCliArgs, parseContactsFile } from "./main.ts";
import { demoContactId } from "./portal_state.ts";

Deno.test("CLI arguments", () => {
  assertEquals(
    parseCliArgs(
      [
        "--port",
        "8443",
        "--cert-dir=/tmp/x",
        "--contacts",
        "3",
        "--scenario",
        '{"kind":"429","times":1}',
        "--limiter",
        "6000/300s/52",
      ],
      { DYNAMICS_MOCK_CLIENT_SECRET: "from-env" },
    ),
    {
      port: 8443,
      certDir: "/tmp/x",
      contacts: 3,
      scenario: { kind: "429", times: 1 },
      limiter: { requests: 6000, windowMs: 300_000, concurrent: 52 },
      clientSecret: "from-env",
      recordLimit: 100_000,
    },
  );
  assertEquals(parseCliArgs(["--cert-dir", "d"]).port, 0);
  assertEquals(parseCliArgs(["--cert-dir", "d", "--record-limit", "5"]).recordLimit, 5);
  assertThrows(() => parseCliArgs([]), Error, "--cert-dir");
  assertThrows(() => parseCliArgs(["--cert-dir", "d", "--bogus", "1"]), Error, "unknown argument");
  assertThrows(
    () => parseCliArgs(["--cert-dir", "d", "--contacts", "2", "--contacts-file", "f"]),
    Error,
    "exclude",
  );
  assertThrows(
    () => parseCliArgs(["--cert-dir", "d", "--scenario", "nope"]),
    Error,
    "unknown scenario",
  );
  assertThrows(() => parseCliArgs(["--cert-dir", "d", "--port"]), Error, "needs a value");
});

Deno.test("contacts files: JSON or one id per line", () => {
  assertEquals(
    parseContactsFile(`["${demoContactId(1)}", {"id": "${demoContactId(2)}", "visible": true}]`),
    [
      demoContactId(1),
      { id: demoContactId(2), visible: true },
    ],
  );
  assertEquals(parseContactsFile(`# demo\n${demoContactId(3)}\n\n${demoContactId(4)} # second\n`), [
    demoContactId(3),
    demoContactId(4),
  ]);
  assertThrows(() => parseContactsFile("[1]"), Error, "entries");
});

async function firstLine(stream: ReadableStream<Uint8Array>) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  while (!buf.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
  }
  return { line: buf.split("\n")[0], reader };
}

Deno.test("CLI: prints its URLs, serves HTTPS with the generated CA, stops on SIGTERM", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dynamics-mock-cli-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./main.ts", import.meta.url).pathname,
      "--port",
      "0",
      "--cert-dir",
      dir,
      "--contacts",
      "2",
      "--scenario",
      "always-503",
    ],
    env: { DYNAMICS_MOCK_CLIENT_SECRET: "cli-secret", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const { line, reader } = await firstLine(child.stdout);
  let client: Deno.HttpClient | undefined;
  try {
    const info = JSON.parse(line);
    assertEquals(Object.keys(info).sort(), [
      "baseUrl",
      "caCertFile",
      "clientId",
      "port",
      "scope",
      "tenantId",
      "tokenUrl",
    ]);
    assertEquals(info.baseUrl, `https://127.0.0.1:${info.port}`);
    assertEquals(info.tokenUrl, `${info.baseUrl}/${info.tenantId}/oauth2/v2.0/token`);
    assertEquals(info.caCertFile, `${await Deno.realPath(dir)}/ca.pem`);
    client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(info.caCertFile)] });
    const contacts = await (await fetch(`${info.baseUrl}/__mock/contacts`, { client })).json();
    assertEquals(contacts.map((c: { id: string }) => c.id), [demoContactId(1), demoContactId(2)]);
    const tokenRes = await fetch(info.tokenUrl, {
      client,
      method: "POST",
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: info.clientId,
        client_secret: "cli-secret",
        scope: info.scope,
      }),
    });
    assertEquals(tokenRes.status, 200);
    const { access_token } = await tokenRes.json();
    const who = await fetch(`${info.baseUrl}/api/data/v9.2/WhoAmI`, {
      client,
      headers: { Authorization: `Bearer ${access_token}` },
    });
    await who.body?.cancel();
    assertEquals(who.status, 503); // --scenario applied
  } finally {
    client?.close();
    child.kill("SIGTERM");
    const status = await child.status;
    await reader.cancel();
    const err = await stderr;
    await Deno.remove(dir, { recursive: true });
    assert(status.success, `mock exited ${status.code}: ${err}`);
  }
});
