// Secret hygiene across the suites' paths, in ONE test: success, coordinator force sync, 503
// exhaustion into a dead letter, sync_mentor 502, a permanent 403, a missing mapping, a 401 from
// the Web API, an invalid_client after a secret rotation (old and new secret both in play), bad
// and forged JWTs, bad input, reconcile, expiry_check, redrive and health — then EVERY log line of
// every function process, every response body, every alert webhook body and every row of
// sync_audit_log / dynamics_sync_failures / sync_alerts / dead_letter_queue / sync_queue is
// searched for the client secret (old and rotated), the service role key, the JWT secret, the
// user JWTs the test minted and any access token the mock issued (by value when presented, and
// by the mock's token shape otherwise). The mock's own recordings are excluded: they hold the
// secrets by design (they are the evidence that the secrets were really in play).
import { assert, assertEquals } from "../mock/assert.ts";
import { Harness, randomSecret } from "../e2e/harness.ts";
import { seedMentors } from "./chaos_lib.ts";

Deno.test({
  name: "no secret or token in any log line, response, webhook body or sync row, on every path",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // An alert webhook receiver (loopback): what ALERT_WEBHOOK_URL would get is scanned too.
    const hookBodies: string[] = [];
    const hook = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
      hookBodies.push(await req.text());
      return new Response(null, { status: 204 });
    });
    const h = await Harness.start({
      functions: 0,
      credentials: "vault",
      dbPrefix: "hlf_hygiene",
      env: {
        HLF_SYNC_MAX_ATTEMPTS: "2",
        HLF_QUEUE_RETRY_BASE_MS: "0",
        ALERT_WEBHOOK_URL: `http://127.0.0.1:${hook.addr.port}/alerts`,
      },
    });
    const userJwts: string[] = [];
    const rotated = randomSecret("hygiene-rotated-secret");
    try {
      const fn = await h.spawnFunction();
      const o = await h.seedOrgs();
      const ms = await seedMentors(h, o.hlf, o.hlfA, 8);
      const [ok, coord, exhaust, fail502, forbidden, unauth, rotate, other] = ms;
      const noMapping = await h.mentor({ org: o.hlf, chapters: [o.hlfA], contactId: null });
      const drainDue = async (f = fn) => {
        await h.sql`update public.sync_queue set next_attempt_at = now() where status = 'pending'`;
        return await h.processQueue(undefined, f);
      };

      // Success, then a coordinator's force sync and status with their JWT.
      await h.setStatus(ok.id, "paused");
      assertEquals((await h.processQueue(undefined, fn)).synced, 1);
      const user = await h.coordinator([o.hlfA]);
      const jwt = await h.jwt(user);
      userJwts.push(jwt);
      await h.setStatus(coord.id, "paused");
      const forced = await h.invoke({ action: "sync_mentor", mentor_id: coord.id }, {
        fn,
        token: jwt,
      });
      assertEquals(forced.status, 200, forced.text);
      assertEquals((await h.invoke({ action: "status" }, { fn, token: jwt })).status, 200);

      // 503 until the queue gives up: retry, then dead letter with an alert.
      h.mock.setContactScenario(exhaust.contactId, "always-503");
      await h.setStatus(exhaust.id, "paused");
      await h.processQueue(undefined, fn);
      await drainDue();
      assertEquals((await h.deadLetters(exhaust.id)).length, 1, "503 exhaustion dead-lettered");

      // sync_mentor 502 after its in-request attempts.
      h.mock.setContactScenario(fail502.contactId, { kind: "always-503", retryAfterSeconds: 0 });
      const r502 = await h.invoke({ action: "sync_mentor", mentor_id: fail502.id }, { fn });
      assertEquals(r502.status, 502, r502.text);

      // A permanent 403 and a missing mapping: dead letters.
      h.mock.setContactScenario(forbidden.contactId, "403");
      await h.setStatus(forbidden.id, "paused");
      await drainDue();
      const unmapped = await h.invoke({ action: "sync_mentor", mentor_id: noMapping.id }, { fn });
      assertEquals(unmapped.status, 502);

      // 401 from the Web API after one forced refresh: an auth failure alert.
      h.mock.setContactScenario(unauth.contactId, "401");
      await h.setStatus(unauth.id, "paused");
      await drainDue();
      assert((await h.alerts("auth_failure")).length >= 1, "401 raised an auth alert");
      h.mock.setContactScenario(unauth.contactId, null);

      // Bad and forged credentials, bad input.
      const forged = await h.jwt(user, { secret: randomSecret("wrong-jwt-secret") });
      const expired = await h.jwt(user, { expiresIn: -3600 });
      const serviceRoleForged = await h.jwt(user, {
        role: "service_role",
        secret: randomSecret("wrong"),
      });
      userJwts.push(forged, expired, serviceRoleForged);
      const outsider = await h.jwt(await h.coordinator([o.hlfB]));
      userJwts.push(outsider);
      for (const token of [forged, expired, serviceRoleForged, "not.a.jwt", "", null]) {
        const r = await h.invoke({ action: "status" }, { fn, token });
        assertEquals(r.status, 401, r.text);
      }
      const alien = await h.invoke({ action: "sync_mentor", mentor_id: other.id }, {
        fn,
        token: outsider,
      });
      assertEquals(alien.status, 403);
      const reconcileAsUser = await h.invoke({ action: "reconcile" }, { fn, token: jwt });
      assertEquals(reconcileAsUser.status, 403);
      for (
        const raw of ["", "[]", "{", '{"action":42}', '{"action":"sync_mentor","mentor_id":"x"}']
      ) {
        assertEquals((await h.invoke(null, { fn, raw })).status, 400, raw);
      }
      assertEquals((await h.invoke(null, { fn, raw: "x".repeat(70_000) })).status, 413);
      assertEquals((await h.invoke(null, { fn, method: "PUT", raw: "{}" })).status, 405);

      // The secret is rotated at Azure AD while Vault still has the old one; a cold process.
      h.mock.setClientSecret(rotated);
      const cold = await h.spawnFunction();
      await h.setStatus(rotate.id, "paused");
      await h.processQueue(undefined, cold);
      const down = await h.invoke({ action: "health" }, { fn: cold });
      assertEquals(down.status, 503, down.text);
      await h.writeVaultCredentials(rotated);
      await drainDue(cold);
      assertEquals(h.portalVisible(rotate.contactId), false, "the rotated secret from Vault works");
      assertEquals((await h.invoke({ action: "health" }, { fn: cold })).status, 200);

      // Operations: reconcile, expiry check, redrive.
      for (const c of [exhaust, fail502, forbidden]) h.mock.setContactScenario(c.contactId, null);
      assertEquals(
        (await h.invoke({ action: "reconcile", dry_run: false }, { fn: cold })).status,
        200,
      );
      assertEquals((await h.invoke({ action: "expiry_check" }, { fn: cold })).status, 200);
      for (const d of await h.deadLetters()) {
        await h.invoke({ action: "redrive", dead_letter_id: d.id }, { fn: cold });
      }
      await drainDue(cold);

      // The secrets were really in play (the mock's recordings hold them, by design)...
      const tokenBodies = h.tokenRequests().map((r) => r.body).join("\n");
      assert(tokenBodies.includes(encodeURIComponent(h.clientSecret)), "old secret was sent");
      assert(tokenBodies.includes(encodeURIComponent(rotated)), "rotated secret was sent");
      assert(h.accessTokensSeen().length >= 3, "several access tokens were issued and used");
      // ...and the places scanned are not empty.
      const logs = h.functions.map((f) => f.stdout() + f.stderr()).join("\n");
      for (
        const event of ["job_synced", "job_dead_letter", "job_auth_failure", "request_rejected"]
      ) {
        assert(logs.includes(event), `the logs show ${event}`);
      }
      const [{ n }] = await h.sql<{ n: number }[]>`
        select (select count(*) from public.sync_audit_log) + (select count(*) from public.sync_alerts)
             + (select count(*) from public.dead_letter_queue)
             + (select count(*) from public.dynamics_sync_failures) as n`;
      assert(Number(n) > 20, `rows to scan: ${n}`);

      const findings = await h.secretFindings([rotated], userJwts);
      // Whole rows of the outbox too (not only last_error), and every webhook body.
      const secrets = [
        h.clientSecret,
        rotated,
        h.serviceRoleKey,
        h.jwtSecret,
        ...userJwts,
        ...h.accessTokensSeen(),
      ];
      const rows = await h.sql<{ t: string }[]>`select t::text from public.sync_queue t`;
      for (
        const [place, text] of [
          ...rows.map((r, i) => [`sync_queue row ${i}`, r.t] as const),
          ...hookBodies.map((b, i) => [`alert webhook body ${i}`, b] as const),
        ]
      ) {
        for (const s of secrets) if (s && text.includes(s)) findings.push(`a secret in ${place}`);
        if (/mock\.[A-Za-z0-9_-]{40,}/.test(text)) findings.push(`a token in ${place}`);
      }
      assertEquals(findings, []);
    } finally {
      await h.close();
      await hook.shutdown();
    }
  },
});
