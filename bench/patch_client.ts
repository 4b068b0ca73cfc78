// Queue-overhead baseline: a bare Deno fetch client sending the same PATCHes the function sends
// (one per contact, CONCURRENCY at a time) to the mock, reporting its own wall and CPU time.
// Env: BASE_URL, TOKEN, FIELD, FROM, TO, CONCURRENCY; DENO_CERT trusts the mock's CA.
import { contactId, cpuMs } from "./lib.ts";

const env = (n: string) => {
  const v = Deno.env.get(n);
  if (v === undefined) throw new Error(`${n} is required`);
  return v;
};
const base = env("BASE_URL");
const token = env("TOKEN");
const field = env("FIELD");
const from = Number(env("FROM"));
const to = Number(env("TO"));
const concurrency = Number(env("CONCURRENCY"));

const cpu0 = cpuMs(Deno.pid);
const t0 = performance.now();
let next = from;
let failed = 0;
const worker = async () => {
  while (next <= to) {
    const n = next++;
    const res = await fetch(`${base}/api/data/v9.2/contacts(${contactId(n)})`, {
      method: "PATCH",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "odata-maxversion": "4.0",
        "odata-version": "4.0",
        "if-match": "*",
      },
      body: JSON.stringify({ [field]: false }),
    });
    await res.body?.cancel();
    if (res.status !== 204 && res.status !== 200) failed++;
  }
};
await Promise.all(Array.from({ length: concurrency }, worker));
const wallMs = performance.now() - t0;
console.log(JSON.stringify({ n: to - from + 1, wallMs, cpuMs: cpuMs(Deno.pid) - cpu0, failed }));
