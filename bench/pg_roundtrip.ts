// Profile helper for the queue-overhead figure: one PostgreSQL round trip (`select 1`) through a
// raw Deno.connect socket (simple-query protocol, trust auth) vs through postgres.js, which runs on
// Deno's node:net compatibility layer. Usage: DATABASE_URL=… deno run -A bench/pg_roundtrip.ts
import postgres from "postgres";

const url = new URL(Deno.env.get("DATABASE_URL")!);
const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
const enc = new TextEncoder();
const db = url.pathname.slice(1) || "postgres";
const params = enc.encode(`user\0${url.username || "postgres"}\0database\0${db}\0\0`);
const start = new Uint8Array(8 + params.length);
const dv = new DataView(start.buffer);
dv.setInt32(0, start.length);
dv.setInt32(4, 196608);
start.set(params, 8);
await conn.write(start);
const buf = new Uint8Array(65536);
async function untilZ() {
  let acc = new Uint8Array(0);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("closed");
    const b = new Uint8Array(acc.length + n);
    b.set(acc);
    b.set(buf.subarray(0, n), acc.length);
    acc = b;
    // scan messages
    let i = 0;
    while (i + 5 <= acc.length) {
      const len = new DataView(acc.buffer, acc.byteOffset + i + 1, 4).getInt32(0);
      if (i + 1 + len > acc.length) break;
      if (acc[i] === 90) return; // 'Z'
      i += 1 + len;
    }
  }
}
await untilZ();
const q = enc.encode("select 1\0");
const msg = new Uint8Array(5 + q.length);
msg[0] = 81;
new DataView(msg.buffer).setInt32(1, 4 + q.length);
msg.set(q, 5);
const t0 = performance.now();
for (let i = 0; i < 200; i++) {
  await conn.write(msg);
  await untilZ();
}
console.log(
  `raw Deno.connect simple query: ${((performance.now() - t0) / 200).toFixed(3)} ms/query`,
);
conn.close();
const sql = postgres(url.toString(), { max: 1, onnotice: () => {} });
await sql`select 1`;
let t1 = performance.now();
for (let i = 0; i < 200; i++) await sql`select 1`;
console.log(
  `postgres.js (node:net compat) select 1: ${((performance.now() - t1) / 200).toFixed(3)} ms/query`,
);
t1 = performance.now();
for (let i = 0; i < 200; i++) await sql.unsafe(`select 1`);
console.log(`postgres.js unsafe simple: ${((performance.now() - t1) / 200).toFixed(3)} ms/query`);
await sql.end();
