-- The outbox trigger: every rule of the contract, coalescing, the HLF-only filter, the
-- reinstated-without-certification warning, and a status change that never fails.
begin;
select plan(34);

\set hlf '10000000-0000-0000-0000-000000000001'
\set nhf '10000000-0000-0000-0000-000000000002'
\set off '10000000-0000-0000-0000-000000000003'
\set m1 '20000000-0000-0000-0000-000000000001'
\set m2 '20000000-0000-0000-0000-000000000002'
\set m3 '20000000-0000-0000-0000-000000000003'
\set m4 '20000000-0000-0000-0000-000000000004'
\set m5 '20000000-0000-0000-0000-000000000005'
\set m6 '20000000-0000-0000-0000-000000000006'
\set m7 '20000000-0000-0000-0000-000000000007'
\set m8 '20000000-0000-0000-0000-000000000008'
\set m9 '20000000-0000-0000-0000-000000000009'
\set n1 '20000000-0000-0000-0000-0000000000a1'
\set o1 '20000000-0000-0000-0000-0000000000b1'

-- HLF (sync on), NHF (no settings row = off), OFF (a row with sync off).
insert into public.organizations (id, code) values
  (:'hlf', 'HLF_T2'), (:'nhf', 'NHF_T2'), (:'off', 'OFF_T2');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled) values
  (:'hlf', true), (:'off', false);

insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'m1', :'hlf', 'M1 valid cert', 'active'),
  (:'m2', :'hlf', 'M2 no cert', 'active'),
  (:'m3', :'hlf', 'M3 no mapping', 'active'),
  (:'m4', :'hlf', 'M4 flurry', 'active'),
  (:'m5', :'hlf', 'M5 processing', 'active'),
  (:'m6', :'hlf', 'M6 failing sync path', 'active'),
  (:'m7', :'hlf', 'M7 renewal', 'active'),
  (:'m8', :'hlf', 'M8 paused', 'paused'),
  (:'m9', :'hlf', 'M9 changed by a coordinator', 'active'),
  (:'n1', :'nhf', 'N1 NHF', 'active'),
  (:'o1', :'off', 'O1 sync off', 'active');

select is((select operation from public.sync_queue where mentor_id = :'m8' and status = 'pending'),
  'remove', 'inserting a paused HLF mentor enqueues remove');
select is((select count(*)::int from public.sync_queue
            where mentor_id in (:'m1', :'m2', :'m3', :'m4', :'m5', :'m6', :'m7', :'m9', :'n1', :'o1')),
  0, 'inserting active mentors (no certification yet) enqueues nothing');

insert into public.certifications (mentor_id, expires_at) values
  (:'m1', now() + interval '1 year'), (:'m3', now() + interval '1 year'),
  (:'m4', now() + interval '1 year'), (:'m5', now() + interval '1 year'),
  (:'m6', now() - interval '1 day'), (:'m7', now() - interval '1 day'),
  (:'m8', now() + interval '1 year'), (:'m9', now() + interval '1 year'),
  (:'n1', now() + interval '1 year'), (:'o1', now() + interval '1 year');

select results_eq(
  format($$select operation, triggered_by_event from public.sync_queue where mentor_id = %L$$, :'m1'),
  $$values ('restore', 'certification_change')$$,
  'a valid certification for an active HLF mentor enqueues restore (certification_change)');
select is((select operation from public.sync_queue where mentor_id = :'m6'),
  'remove', 'an expired certification for an active mentor enqueues remove');
select is((select count(*)::int from public.sync_queue where mentor_id = :'m8'),
  1, 'a certification change of a paused mentor enqueues nothing new');

insert into public.mentor_dynamics_contacts (mentor_id, dynamics_contact_id)
select id, gen_random_uuid() from public.peer_mentors
 where id in (:'m1', :'m2', :'m4', :'m5', :'m6', :'m7', :'m8', :'m9', :'n1', :'o1');

-- From here on, start from an empty queue for these mentors.
delete from public.sync_queue where mentor_id in (select id from public.peer_mentors where organization_id in (:'hlf', :'nhf', :'off'));

-- paused -> remove
update public.peer_mentors set status = 'paused' where id = :'m1';
select results_eq(
  format($$select operation, triggered_by_event, status from public.sync_queue where mentor_id = %L$$, :'m1'),
  $$values ('remove', 'status_change', 'pending')$$,
  'active -> paused enqueues one pending remove job (status_change)');

-- same status again -> nothing new (a re-enqueue would reset next_attempt_at to now())
update public.sync_queue set next_attempt_at = now() + interval '1 hour' where mentor_id = :'m1';
update public.peer_mentors set status = 'paused' where id = :'m1';
select ok((select next_attempt_at > now() from public.sync_queue where mentor_id = :'m1'),
  'paused -> paused changes nothing in the queue');
update public.peer_mentors set full_name = 'M1 renamed' where id = :'m1';
select ok((select next_attempt_at > now() from public.sync_queue where mentor_id = :'m1'),
  'an update that does not touch status changes nothing in the queue');

-- back to active with a valid certification -> restore, coalesced into the pending row
create temp table m1_job on commit drop as select id from public.sync_queue where mentor_id = :'m1';
update public.peer_mentors set status = 'active' where id = :'m1';
select is((select count(*)::int from public.sync_queue where mentor_id = :'m1'), 1,
  'reinstating coalesces into the existing pending job (no second row)');
select is((select id from public.sync_queue where mentor_id = :'m1'), (select id from m1_job),
  'the coalesced job keeps its id');
select results_eq(
  format($$select operation, next_attempt_at <= now() from public.sync_queue where mentor_id = %L$$, :'m1'),
  $$values ('restore', true)$$,
  'the newer intent (restore) replaces the older one and is due now');

-- a flurry of updates yields one job with the last intent
update public.peer_mentors set status = 'paused' where id = :'m4';
update public.peer_mentors set status = 'active' where id = :'m4';
update public.peer_mentors set status = 'expired_cert' where id = :'m4';
update public.peer_mentors set status = 'active' where id = :'m4';
update public.peer_mentors set status = 'paused' where id = :'m4';
select is((select count(*)::int from public.sync_queue where mentor_id = :'m4'), 1,
  'five status changes in a row leave exactly one job');
select is((select operation from public.sync_queue where mentor_id = :'m4'), 'remove',
  'the single job carries the last intent (remove)');

-- expired_cert -> remove
update public.peer_mentors set status = 'expired_cert' where id = :'m5';
select results_eq(
  format($$select operation, triggered_by_event from public.sync_queue where mentor_id = %L and status = 'pending'$$, :'m5'),
  $$values ('remove', 'status_change')$$,
  'active -> expired_cert enqueues remove');

-- back to active WITHOUT a valid certification -> no job, audit warning
update public.peer_mentors set status = 'paused' where id = :'m2';
update public.peer_mentors set status = 'active' where id = :'m2';
select is((select count(*)::int from public.sync_queue where mentor_id = :'m2'), 1,
  'reinstating without a valid certification adds no job');
select is((select operation from public.sync_queue where mentor_id = :'m2'), 'remove',
  'the earlier remove job is left as it was (the mentor stays hidden)');
select is((select count(*)::int from public.sync_audit_log
            where mentor_id = :'m2' and event = 'no_valid_certification'), 1,
  'reinstating without a valid certification writes a no_valid_certification audit row');

-- organisations without dynamics_sync_enabled -> no row
update public.peer_mentors set status = 'paused' where id = :'n1';
update public.peer_mentors set status = 'expired_cert' where id = :'o1';
select is((select count(*)::int from public.sync_queue where mentor_id = :'n1'), 0,
  'an NHF mentor (no org_sync_settings row) never gets a job');
select is((select count(*)::int from public.sync_queue where mentor_id = :'o1'), 0,
  'a mentor of an organisation with sync disabled never gets a job');

-- missing mapping row -> still enqueued (the processor dead-letters it with an alert)
update public.peer_mentors set status = 'paused' where id = :'m3';
select is((select operation from public.sync_queue where mentor_id = :'m3' and status = 'pending'),
  'remove', 'a mentor without a mapping row is still enqueued');

-- a failing sync path never fails the status change
select set_config('hlf.sync_event', 'bogus', true);
select lives_ok(format($$update public.peer_mentors set status = 'paused' where id = %L$$, :'m6'),
  'the status change succeeds although the sync part fails');
select set_config('hlf.sync_event', '', true);
select is((select status from public.peer_mentors where id = :'m6'), 'paused',
  'the status change was applied');
select is((select count(*)::int from public.sync_queue where mentor_id = :'m6'), 0,
  'the failed sync part wrote no job');
select is((select count(*)::int from public.sync_audit_log where mentor_id = :'m6' and event = 'trigger_error'), 1,
  'the failure is recorded as a trigger_error audit row');

-- the transaction-local hlf.sync_event names the event
select set_config('hlf.sync_event', 'reconciliation', true);
update public.peer_mentors set status = 'paused' where id = :'m9';
select set_config('hlf.sync_event', '', true);
select is((select triggered_by_event from public.sync_queue where mentor_id = :'m9'), 'reconciliation',
  'hlf.sync_event overrides triggered_by_event');

-- renewal of an active mentor's expired certification -> restore
insert into public.certifications (mentor_id, expires_at) values (:'m7', now() + interval '2 years');
select is((select operation from public.sync_queue where mentor_id = :'m7'), 'restore',
  'a valid renewal for an active mentor enqueues restore');
select is((select triggered_by_event from public.sync_queue where mentor_id = :'m7'), 'certification_change',
  'the renewal job is marked certification_change');

-- deleting the only valid certification of an active mentor -> remove
delete from public.certifications where mentor_id = :'m1';
select is((select operation from public.sync_queue where mentor_id = :'m1' and status = 'pending'), 'remove',
  'deleting the valid certification of an active mentor turns the pending job into remove');
select is((select triggered_by_event from public.sync_queue where mentor_id = :'m1' and status = 'pending'),
  'certification_change', 'that job is marked certification_change');

-- certification changes of a paused mentor -> nothing
delete from public.sync_queue where mentor_id = :'m8';
update public.certifications set expires_at = now() + interval '3 years' where mentor_id = :'m8';
select is((select count(*)::int from public.sync_queue where mentor_id = :'m8'), 0,
  'a certification update of a paused mentor enqueues nothing');

-- a processing job and one pending job of the same mentor may coexist
select is((select count(*)::int from public.sync_claim(1, 60, :'m5')), 1, 'the expired_cert job of M5 is claimed');
update public.peer_mentors set status = 'active' where id = :'m5';
select results_eq(
  format($$select status, operation from public.sync_queue where mentor_id = %L order by status$$, :'m5'),
  $$values ('pending', 'restore'), ('processing', 'remove')$$,
  'a new intent while a job is processing creates one pending job beside it');

-- the trigger works for a role that has no rights on the sync tables
create policy tmp_t2_update on public.peer_mentors for all to authenticated using (true) with check (true);
set local role authenticated;
set local request.jwt.claims to '{"sub":"30000000-0000-0000-0000-000000000001","role":"authenticated"}';
select lives_ok(format($$update public.peer_mentors set status = 'active' where id = %L$$, :'m9'),
  'an authenticated user allowed to update a mentor can change the status');
reset role;
select results_eq(
  format($$select operation, triggered_by_event from public.sync_queue where mentor_id = %L and status = 'pending'$$, :'m9'),
  $$values ('restore', 'status_change')$$,
  'the outbox row is written although that user cannot write sync_queue');

select * from finish();
rollback;
