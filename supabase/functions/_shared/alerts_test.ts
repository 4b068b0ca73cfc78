import { assertEquals } from "../../../tests/assert.ts";
import { AlertNotifier } from "./alerts.ts";
import type { Sql } from "./db.ts";
import { setLogWriter } from "./log.ts";

const URL_ = "http://127.0.0.1:9/hooks/capability-token-in-path";
const CREATED = new Date("2026-11-24T02:10:00.000Z");

/** A stand-in for postgres.js: every query answers the alert row with the id asked for. */
function fakeSql(missing = false): Sql {
  return ((_strings: TemplateStringsArray, ...values: unknown[]) =>
    Promise.resolve(
      missing ? [] : [{
        id: String(values[0]),
        kind: "dead_letter",
        mentor_id: "5b0f8f7e-0000-4000-8000-000000000001",
        message: "sync job 1 dead-lettered: NOT_FOUND",
        created_at: CREATED,
      }],
    )) as unknown as Sql;
}

interface Harness {
  notifier: AlertNotifier;
  calls: { url: string; body: string; headers: Record<string, string> }[];
  sleeps: number[];
  logs: string[];
}

function harness(
  answers: (number | Error)[],
  opts: { url?: string | null; missing?: boolean } = {},
): Harness {
  const calls: Harness["calls"] = [];
  const sleeps: number[] = [];
  const logs: string[] = [];
  setLogWriter((_level, line) => logs.push(line));
  const notifier = new AlertNotifier(fakeSql(opts.missing), {
    url: opts.url === null ? undefined : opts.url ?? URL_,
    fetch: (url, init) => {
      calls.push({
        url,
        body: String(init.body),
        headers: init.headers as Record<string, string>,
      });
      const a = answers[Math.min(calls.length - 1, answers.length - 1)];
      return a instanceof Error
        ? Promise.reject(a)
        : Promise.resolve(new Response(null, { status: a }));
    },
    sleep: (ms) => {
      sleeps.push(ms);
      return Promise.resolve();
    },
  });
  return { notifier, calls, sleeps, logs };
}

const events = (logs: string[]) => logs.map((l) => JSON.parse(l));

Deno.test("a new alert is POSTed as {kind, mentor_id, message, alert_id, created_at}", async () => {
  const h = harness([204]);
  h.notifier.notify(7);
  await h.notifier.flush();
  setLogWriter(null);
  assertEquals(h.calls.length, 1);
  assertEquals(h.calls[0].url, URL_);
  assertEquals(h.calls[0].headers["content-type"], "application/json");
  assertEquals(JSON.parse(h.calls[0].body), {
    kind: "dead_letter",
    mentor_id: "5b0f8f7e-0000-4000-8000-000000000001",
    message: "sync job 1 dead-lettered: NOT_FOUND",
    alert_id: 7,
    created_at: CREATED.toISOString(),
  });
  assertEquals(events(h.logs).map((e) => [e.event, e.alertId, e.attempts]), [
    ["alert_delivered", 7, 1],
  ]);
});

Deno.test("5xx and network errors are retried with backoff; delivered on the third try", async () => {
  const h = harness([503, new TypeError("connection refused"), 200]);
  h.notifier.notify(1);
  await h.notifier.flush();
  setLogWriter(null);
  assertEquals(h.calls.length, 3);
  assertEquals(h.sleeps, [250, 500]);
  assertEquals(events(h.logs).map((e) => [e.event, e.attempts]), [["alert_delivered", 3]]);
});

Deno.test("a 4xx refusal is not retried; the failure is logged with the origin only", async () => {
  const h = harness([400]);
  h.notifier.notify(2);
  await h.notifier.flush();
  setLogWriter(null);
  assertEquals(h.calls.length, 1);
  const [e] = events(h.logs);
  assertEquals([e.event, e.attempts, e.httpStatus, e.target], [
    "alert_delivery_failed",
    1,
    400,
    "http://127.0.0.1:9",
  ]);
});

Deno.test("a receiver that stays down: 3 tries, logged, nothing thrown, URL path not logged", async () => {
  const h = harness([new TypeError(`error sending request for url (${URL_}): refused`)]);
  h.notifier.notify(3);
  await h.notifier.flush();
  setLogWriter(null);
  assertEquals(h.calls.length, 3);
  assertEquals(h.logs.length, 1);
  assertEquals(h.logs[0].includes("capability-token-in-path"), false, h.logs[0]);
  const [e] = events(h.logs);
  assertEquals([e.event, e.attempts, e.httpStatus], ["alert_delivery_failed", 3, null]);
});

Deno.test("a deduplicated alert (null), no webhook URL, or a vanished row send nothing", async () => {
  const dedup = harness([200]);
  dedup.notifier.notify(null);
  dedup.notifier.notify(undefined);
  await dedup.notifier.flush();
  assertEquals(dedup.calls.length, 0);
  const off = harness([200], { url: null });
  assertEquals(off.notifier.enabled, false);
  off.notifier.notify(5);
  await off.notifier.flush();
  assertEquals(off.calls.length, 0);
  const gone = harness([200], { missing: true });
  gone.notifier.notify(6);
  await gone.notifier.flush();
  setLogWriter(null);
  assertEquals(gone.calls.length, 0);
  assertEquals(events(gone.logs).map((e) => e.event), ["alert_delivery_failed"]);
});

Deno.test("at most 4 deliveries in flight; flush waits for all of them", async () => {
  let inFlight = 0;
  let maxInFlight = 0;
  let delivered = 0;
  const logs: string[] = [];
  setLogWriter((_l, line) => logs.push(line));
  const notifier = new AlertNotifier(fakeSql(), {
    url: URL_,
    fetch: async () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      delivered++;
      return new Response(null, { status: 200 });
    },
  });
  for (let i = 1; i <= 10; i++) notifier.notify(i);
  await notifier.flush();
  setLogWriter(null);
  assertEquals([delivered, maxInFlight], [10, 4]);
  assertEquals(logs.length, 10);
});
