// Local stand-in for a Supabase Database Webhook: pg_net is not packaged here, so this relays the
// outbox trigger's NOTIFY hlf_sync_queue as the webhook POST the function receives in production.
// Usage: deno run -A scripts/lib/webhook_relay.ts   (DATABASE_URL, FUNCTION_URL, SERVICE_ROLE_KEY)
import postgres from "postgres";

const dbUrl = Deno.env.get("DATABASE_URL")!;
const functionUrl = Deno.env.get("FUNCTION_URL")!;
const key = Deno.env.get("SERVICE_ROLE_KEY")!;
const sql = postgres(dbUrl, { max: 1, onnotice: () => {} });

let running = false;
let again = false;

async function deliver(jobId: string): Promise<void> {
  if (running) {
    again = true;
    return;
  }
  running = true;
  do {
    again = false;
    const payload = {
      type: "INSERT",
      table: "sync_queue",
      schema: "public",
      record: { id: Number(jobId) },
      old_record: null,
    };
    try {
      const res = await fetch(functionUrl, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify(payload),
      });
      console.log(`webhook relay: job ${jobId} → ${res.status} ${await res.text()}`);
    } catch (e) {
      console.error(`webhook relay: delivery failed: ${e instanceof Error ? e.message : e}`);
    }
  } while (again);
  running = false;
}

await sql.listen("hlf_sync_queue", (jobId) => void deliver(jobId));
console.log("webhook relay: listening on hlf_sync_queue");
