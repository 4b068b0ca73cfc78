-- Queue mechanics: claim (lease, SKIP LOCKED, one job per mentor, facts), complete (every
-- outcome, fencing), enqueue, redrive, alerts and their deduplication, reconcile paging, prune.
begin;
select plan(60);

\set hlf '11000000-0000-0000-0000-000000000001'
\set off '11000000-0000-0000-0000-000000000002'
\set a '21000000-0000-0000-0000-00000000000a'
\set b '21000000-0000-0000-0000-00000000000b'
\set c '21000000-0000-0000-0000-00000000000c'
\set d '21000000-0000-0000-0000-00000000000d'
\set x '21000000-0000-0000-0000-0000000000ff'
\set ca '31000000-0000-0000-0000-00000000000a'

-- Only this test's jobs are due: park everything else.
update public.sync_queue set next_attempt_at = now() + interval '10 years'
 where status = 'pending';
update public.sync_queue set locked_until = now() + interval '10 years' where status = 'processing';

insert into public.organizations (id, code) values (:'hlf', 'HLF_T3'), (:'off', 'OFF_T3');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled) values (:'hlf', true), (:'off', false);
insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'a', :'hlf', 'A', 'active'), (:'b', :'hlf', 'B', 'active'),
  (:'c', :'hlf', 'C', 'paused'), (:'d', :'hlf', 'D', 'active'), (:'x', :'off', 'X', 'active');
insert into public.certifications (mentor_id, expires_at) values
  (:'a', '2100-01-01'), (:'b', '2100-01-01'), (:'c', '2100-01-01'), (:'d', '2100-06-01'),
  (:'x', '2100-01-01');
insert into public.mentor_dynamics_contacts (mentor_id, dynamics_contact_id) values
  (:'a', :'ca'), (:'b', gen_random_uuid()), (:'d', gen_random_uuid()), (:'x', gen_random_uuid());
delete from public.sync_queue where mentor_id in (:'a', :'b', :'c', :'d', :'x');

-- enqueue
create temp table ids (k text primary key, v bigint) on commit drop;
insert into ids select 'a1', public.sync_enqueue(:'a', 'reconciliation');
select is((select operation from public.sync_queue where id = (select v from ids where k = 'a1')), 'restore',
  'sync_enqueue derives restore for a mentor who should be visible');
select is(public.sync_enqueue(:'a', 'manual_coordinator_action'), (select v from ids where k = 'a1'),
  'a second sync_enqueue coalesces into the same pending job');
select is((select triggered_by_event from public.sync_queue where id = (select v from ids where k = 'a1')),
  'manual_coordinator_action', 'the coalesced job carries the newest event');
insert into ids select 'c1', public.sync_enqueue(:'c', 'reconciliation');
select is((select operation from public.sync_queue where id = (select v from ids where k = 'c1')), 'remove',
  'sync_enqueue derives remove for a paused mentor');
select throws_ok(format('select public.sync_enqueue(%L, %L)', '21000000-0000-0000-0000-000000000999', 'reconciliation'),
  'P0002', null, 'sync_enqueue of an unknown mentor raises no_data_found');
insert into ids select 'b1', public.sync_enqueue(:'b', 'reconciliation');
update public.sync_queue set next_attempt_at = now() - interval '1 minute' where id = (select v from ids where k = 'b1');

-- claim
create temp table claim1 on commit drop as select * from public.sync_claim(10, 120);
select is((select count(*)::int from claim1), 3, 'sync_claim returns the three due jobs');
select is((select job_id from claim1 limit 1), (select v from ids where k = 'b1'),
  'jobs come in next_attempt_at order');
select results_eq(
  format($$select mentor_id, operation, attempts, dynamics_contact_id, mentor_status,
                  latest_cert_expires_at, sync_enabled, last_synced_visible
             from claim1 where mentor_id = %L$$, :'a'),
  format($$values (%L::uuid, 'restore'::text, 1, %L::uuid, 'active'::text, '2100-01-01'::timestamptz, true, null::boolean)$$, :'a', :'ca'),
  'a claimed job carries the facts the decision needs');
select results_eq(
  $$select distinct status, locked_until = now() + interval '120 seconds', attempts
      from public.sync_queue where id in (select job_id from claim1)$$,
  $$values ('processing'::text, true, 1)$$,
  'claimed jobs are processing, leased for p_lease_seconds, attempts incremented');
select is((select count(*)::int from public.sync_claim(10, 120)), 0,
  'a second claim gets nothing while the leases are live');

-- a new intent while processing: pending beside it, not claimable
update public.peer_mentors set status = 'paused' where id = :'a';
select is((select count(*)::int from public.sync_claim(10, 120)), 0,
  'a pending job of a mentor whose job is processing is not claimed');

-- the lease expires: the processing job is re-claimed, never both of that mentor
update public.sync_queue set locked_until = now() - interval '1 second'
 where id = (select v from ids where k = 'a1');
create temp table claim2 on commit drop as select * from public.sync_claim(10, 120);
select results_eq('select job_id, attempts from claim2',
  format('values (%s::bigint, 2)', (select v from ids where k = 'a1')),
  'after its lease expired the job is claimed again (attempts 2) and the pending one is not');

-- fencing: the stale worker (attempt 1) cannot complete
select is(public.sync_complete((select v from ids where k = 'a1'), 1, 'synced', true) ->> 'applied', 'false',
  'sync_complete with a stale attempt is not applied');
select is((select status from public.sync_queue where id = (select v from ids where k = 'a1')), 'processing',
  'the job stays processing after a stale completion');

-- synced
select is(public.sync_complete((select v from ids where k = 'a1'), 2, 'synced', true, null, null, null,
  '[{"attempt":1,"httpStatus":503,"errorCode":"SERVER_ERROR","durationMs":12,"event":"dynamics_attempt"},
    {"attempt":2,"httpStatus":204,"durationMs":9,"event":"dynamics_attempt"}]') ->> 'applied', 'true',
  'sync_complete synced is applied for the current attempt');
select results_eq(
  format($$select status, locked_until from public.sync_queue where id = %s$$, (select v from ids where k = 'a1')),
  $$values ('done'::text, null::timestamptz)$$, 'a synced job is done and unlocked');
select results_eq(
  format($$select last_synced_visible, last_synced_at = now() from public.mentor_dynamics_contacts where mentor_id = %L$$, :'a'),
  $$values (true, true)$$, 'synced records last_synced_visible and last_synced_at');
select results_eq(
  format($$select event, http_status, error_code, attempt, duration_ms from public.sync_audit_log where job_id = %s order by id$$, (select v from ids where k = 'a1')),
  $$values ('dynamics_attempt'::text, 503, 'SERVER_ERROR'::text, 1, 12),
           ('dynamics_attempt', 204, null, 2, 9),
           ('synced', null, null, 2, null)$$,
  'every attempt and the decision are in sync_audit_log');
select is((select count(*)::int from public.sync_claim(10, 120, :'a')), 1,
  'with the processing job done, the mentor''s pending job can be claimed (p_mentor_id)');

-- retry: pending at p_retry_at, failure opened, sync_pending alert
select is(public.sync_complete((select v from ids where k = 'b1'), 1, 'retry', null, now() + interval '1 hour',
  'SERVER_ERROR', 'HTTP 503 after 3 attempts') ->> 'status', 'pending',
  'sync_complete retry puts the job back to pending');
select results_eq(
  format($$select status, next_attempt_at, attempts, last_error from public.sync_queue where id = %s$$, (select v from ids where k = 'b1')),
  $$values ('pending'::text, now() + interval '1 hour', 1, 'SERVER_ERROR: HTTP 503 after 3 attempts'::text)$$,
  'the retried job waits until p_retry_at and keeps its attempts');
select results_eq(
  format($$select error_code, message from public.dynamics_sync_failures where mentor_id = %L and resolved_at is null$$, :'b'),
  $$values ('SERVER_ERROR'::text, 'HTTP 503 after 3 attempts'::text)$$,
  'a retry opens a dynamics_sync_failures row');
select is((select count(*)::int from public.sync_alerts where mentor_id = :'b' and kind = 'sync_pending'), 1,
  'a retry raises a sync_pending alert');
select is((select count(*)::int from public.sync_claim(10, 120, :'b')), 0,
  'a job waiting for its retry time is not claimed');
update public.sync_queue set next_attempt_at = now() - interval '1 second' where id = (select v from ids where k = 'b1');
select is((select attempts from public.sync_claim(10, 120, :'b')), 2, 'once due it is claimed with attempts 2');
select is(public.sync_complete((select v from ids where k = 'b1'), 2, 'retry', null, now() - interval '1 second',
  'RATE_LIMITED', 'HTTP 429') ->> 'alert_id', null, 'a second retry raises no second sync_pending alert');
select is((select count(*)::int from public.dynamics_sync_failures where mentor_id = :'b' and resolved_at is null), 1,
  'still exactly one open failure for the mentor');
select is((select error_code from public.dynamics_sync_failures where mentor_id = :'b' and resolved_at is null), 'RATE_LIMITED',
  'the open failure is updated with the latest error');
select is((select count(*)::int from public.sync_alerts where mentor_id = :'b' and kind = 'sync_pending'), 1,
  'still exactly one sync_pending alert for the mentor');
select is((select attempts from public.sync_claim(10, 120, :'b')), 3, 'the job is claimed again (attempts 3)');
select is(public.sync_complete((select v from ids where k = 'b1'), 3, 'synced', false) ->> 'status', 'done',
  'a later success completes the job');
select ok((select resolved_at is not null from public.dynamics_sync_failures where mentor_id = :'b'),
  'a successful sync resolves the mentor''s open failure');
select is((select count(*)::int from public.sync_alerts where mentor_id = :'b' and kind = 'sync_pending' and acknowledged_at is null), 0,
  'a successful sync acknowledges the mentor''s sync_pending alert');

-- dead letter
insert into ids select 'd1', public.sync_enqueue(:'d', 'status_change');
select is((select attempts from public.sync_claim(10, 120, :'d')), 1, 'D''s job is claimed');
create temp table dl on commit drop as
  select public.sync_complete((select v from ids where k = 'd1'), 1, 'dead_letter', null, null,
    'NOT_FOUND', 'contact not found (404)') as r;
select is((select status from public.sync_queue where id = (select v from ids where k = 'd1')), 'dead',
  'dead_letter marks the job dead');
select results_eq(
  format($$select job_id, mentor_id, operation, reason, error_code, payload ->> 'triggered_by_event', (payload ->> 'attempts')::int
             from public.dead_letter_queue where id = %s$$, (select (r ->> 'dead_letter_id')::bigint from dl)),
  format($$values (%s::bigint, %L::uuid, 'restore'::text, 'contact not found (404)'::text, 'NOT_FOUND'::text, 'status_change'::text, 1)$$,
         (select v from ids where k = 'd1'), :'d'),
  'a dead_letter_queue row holds the job facts');
select is((select count(*)::int from public.dynamics_sync_failures where mentor_id = :'d' and resolved_at is null), 1,
  'dead_letter opens a failure');
select is((select count(*)::int from public.sync_alerts where mentor_id = :'d' and kind = 'dead_letter'), 1,
  'dead_letter raises a dead_letter alert');

-- redrive
insert into ids select 'd2', public.sync_redrive((select (r ->> 'dead_letter_id')::bigint from dl));
select results_eq(
  format($$select status, operation, attempts from public.sync_queue where id = %s$$, (select v from ids where k = 'd2')),
  $$values ('pending'::text, 'restore'::text, 0)$$,
  'sync_redrive enqueues a fresh pending job');
select ok((select redriven_at is not null from public.dead_letter_queue where id = (select (r ->> 'dead_letter_id')::bigint from dl)),
  'sync_redrive sets redriven_at');
select throws_ok(format('select public.sync_redrive(%s)', (select (r ->> 'dead_letter_id')::bigint from dl)),
  '55000', null, 'redriving the same dead letter twice raises');
select throws_ok('select public.sync_redrive(-1)', 'P0002', null, 'redriving an unknown dead letter raises no_data_found');

-- auth failure: released without consuming the attempt, one alert per storm
select is((select attempts from public.sync_claim(10, 120, :'d')), 1, 'the redriven job is claimed (attempts 1)');
select is(public.sync_complete((select v from ids where k = 'd2'), 1, 'auth_failure', null, null, 'AUTH_FAILED', 'invalid_client') ->> 'status',
  'pending', 'auth_failure puts the job back to pending');
select results_eq(
  format($$select attempts, next_attempt_at from public.sync_queue where id = %s$$, (select v from ids where k = 'd2')),
  $$values (0, now() + interval '5 minutes')$$,
  'auth_failure does not consume the attempt and waits 5 minutes by default');
select is((select count(*)::int from public.sync_alerts where kind = 'auth_failure' and acknowledged_at is null), 1,
  'auth_failure raises one auth_failure alert');
update public.sync_queue set next_attempt_at = now() where id = (select v from ids where k = 'd2');
select is((select attempts from public.sync_claim(10, 120, :'d')), 1, 'claimed again with the same attempt number');
select is(public.sync_complete((select v from ids where k = 'd2'), 1, 'auth_failure', null, now() + interval '1 minute') ->> 'alert_id', null,
  'a second auth failure raises no second alert while one is unacknowledged');
select is(public.sync_record_alert('auth_failure', null, 'health check failed'), null,
  'sync_record_alert deduplicates auth_failure as well');
select is(public.sync_acknowledge_alerts('auth_failure'), 1, 'sync_acknowledge_alerts acknowledges the open auth_failure alert');
select isnt(public.sync_record_alert('auth_failure', null, 'health check failed again'), null,
  'after acknowledgement a new auth_failure alert is recorded');
select isnt(public.sync_record_alert('divergence', :'d', 'portal shows D'), null,
  'sync_record_alert records other kinds');

-- skipped
update public.sync_queue set next_attempt_at = now() where id = (select v from ids where k = 'd2');
select is((select attempts from public.sync_claim(10, 120, :'d')), 1, 'D''s job is claimed once more');
select is(public.sync_complete((select v from ids where k = 'd2'), 1, 'skipped', null, null, 'SYNC_DISABLED', 'organisation sync disabled') ->> 'status',
  'done', 'skipped completes the job');
select is((select count(*)::int from public.sync_audit_log where job_id = (select v from ids where k = 'd2') and event = 'skipped'), 1,
  'skipped writes an audit row');
select throws_ok(format('select public.sync_complete(%s, 1, %L)', (select v from ids where k = 'd2'), 'maybe'),
  '22023', null, 'an unknown outcome is rejected');

-- retry while a newer pending job exists: merged
update public.sync_queue set next_attempt_at = now() - interval '1 day' where mentor_id = :'a' and status = 'pending';
-- (A's remove job was claimed above by the p_mentor_id claim; a new intent arrives meanwhile)
update public.peer_mentors set status = 'active' where id = :'a';
create temp table amerge on commit drop as
  select id, attempts from public.sync_queue where mentor_id = :'a' and status = 'processing';
select is(public.sync_complete((select id from amerge), (select attempts from amerge), 'retry', null, now() + interval '2 hours', 'SERVER_ERROR', 'HTTP 502')
  ->> 'merged_into', (select id::text from public.sync_queue where mentor_id = :'a' and status = 'pending'),
  'a retry while a newer pending job exists merges into that job');
select results_eq(
  format($$select status, operation, next_attempt_at from public.sync_queue where mentor_id = %L and status in ('pending', 'processing')$$, :'a'),
  $$values ('pending'::text, 'restore'::text, now() + interval '2 hours')$$,
  'the pending job keeps the newest intent and inherits the retry time');

-- reconcile paging
select results_eq(
  format($$select mentor_id, desired_visible from public.sync_reconcile_page(null, 10) where mentor_id in (%L, %L, %L, %L)$$, :'a', :'b', :'d', :'x'),
  format($$values (%L::uuid, true), (%L::uuid, true), (%L::uuid, true)$$, :'a', :'b', :'d'),
  'sync_reconcile_page lists mapped mentors of sync-enabled organisations in mentor_id order');
select results_eq(
  format($$select mentor_id from public.sync_reconcile_page(%L, 10) where mentor_id in (%L, %L, %L, %L)$$, :'a', :'a', :'b', :'d', :'x'),
  format($$values (%L::uuid), (%L::uuid)$$, :'b', :'d'),
  'sync_reconcile_page continues after the cursor');

select * from finish();
rollback;
