-- The nightly expiry checker: transitions through expire_mentor_if_due (status checked first),
-- reminders per organisation thresholds with ON CONFLICT DO NOTHING, idempotency, paging.
begin;
select plan(22);

\set hlf '12000000-0000-0000-0000-000000000001'
\set nhf '12000000-0000-0000-0000-000000000002'
\set oth '12000000-0000-0000-0000-000000000003'
\set e1 '22000000-0000-0000-0000-0000000000e1'
\set e2 '22000000-0000-0000-0000-0000000000e2'
\set e3 '22000000-0000-0000-0000-0000000000e3'
\set e4 '22000000-0000-0000-0000-0000000000e4'
\set e5 '22000000-0000-0000-0000-0000000000e5'
\set e6 '22000000-0000-0000-0000-0000000000e6'
\set e7 '22000000-0000-0000-0000-0000000000e7'
\set r1 '22000000-0000-0000-0000-0000000000a1'
\set r2 '22000000-0000-0000-0000-0000000000a2'
\set r3 '22000000-0000-0000-0000-0000000000a3'
\set r4 '22000000-0000-0000-0000-0000000000a4'
\set r5 '22000000-0000-0000-0000-0000000000a5'

-- Only this test's data counts: earlier data may not be due.
update public.certifications set expires_at = expires_at + interval '200 years' where expires_at < now() + interval '100 days';

insert into public.organizations (id, code) values (:'hlf', 'HLF_T4'), (:'nhf', 'NHF_T4'), (:'oth', 'OTH_T4');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled, reminder_threshold_days) values
  (:'hlf', true, '{30,14,7}'), (:'oth', false, '{60}');
insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'e1', :'hlf', 'E1 expired', 'active'),
  (:'e2', :'hlf', 'E2 renewed', 'active'),
  (:'e3', :'hlf', 'E3 paused', 'paused'),
  (:'e4', :'hlf', 'E4 no cert', 'active'),
  (:'e7', :'nhf', 'E7 NHF expired', 'active'),
  (:'r1', :'hlf', 'R1 in 5 days', 'active'),
  (:'r2', :'hlf', 'R2 in 20 days', 'active'),
  (:'r3', :'hlf', 'R3 in 40 days', 'active'),
  (:'r4', :'nhf', 'R4 NHF in 10 days', 'active'),
  (:'r5', :'oth', 'R5 custom in 45 days', 'active');
insert into public.certifications (mentor_id, expires_at) values
  (:'e1', now() - interval '1 day'),
  (:'e2', now() - interval '1 year'), (:'e2', now() + interval '1 year'),
  (:'e3', now() - interval '1 day'),
  (:'e7', now() - interval '1 day'),
  (:'r1', now() + interval '5 days'),
  (:'r2', now() + interval '20 days'),
  (:'r3', now() + interval '40 days'),
  (:'r4', now() + interval '10 days'),
  (:'r5', now() + interval '45 days');
delete from public.sync_queue where mentor_id in (select id from public.peer_mentors where organization_id in (:'hlf', :'nhf', :'oth'));

create temp table runs (n int, r jsonb) on commit drop;
insert into runs select 1, public.run_expiry_check(500);

select is((select r from runs where n = 1), '{"transitioned": 2, "reminders": 4, "more": false}'::jsonb,
  'the first run moves two mentors and records four reminders');
select results_eq(
  format($$select id, status from public.peer_mentors where id in (%L, %L, %L, %L, %L) order by id$$, :'e1', :'e2', :'e3', :'e4', :'e7'),
  format($$values (%L::uuid, 'expired_cert'::text), (%L::uuid, 'active'::text), (%L::uuid, 'paused'::text), (%L::uuid, 'active'::text), (%L::uuid, 'expired_cert'::text)$$, :'e1', :'e2', :'e3', :'e4', :'e7'),
  'only active mentors whose latest certification expired are moved to expired_cert');
select results_eq(
  format($$select operation, triggered_by_event, status from public.sync_queue where mentor_id = %L$$, :'e1'),
  $$values ('remove'::text, 'expiry_check'::text, 'pending'::text)$$,
  'the transition enqueues a remove job marked expiry_check');
select is((select count(*)::int from public.sync_queue where mentor_id = :'e7'), 0,
  'a transition in an organisation without sync enqueues nothing');
select is(current_setting('hlf.sync_event', true), '',
  'the expiry checker leaves hlf.sync_event as it found it');
select is((select count(*)::int from public.sync_audit_log where mentor_id = :'e1' and event = 'auto_expired'), 1,
  'the transition is audited');
select results_eq(
  format($$select mentor_id, threshold_day, certification_expiry_date from public.cert_expiry_reminders
            where mentor_id in (%L, %L, %L, %L, %L) order by mentor_id$$, :'r1', :'r2', :'r3', :'r4', :'r5'),
  format($$values (%L::uuid, 7, (now() + interval '5 days')::date),
                  (%L::uuid, 30, (now() + interval '20 days')::date),
                  (%L::uuid, 14, (now() + interval '10 days')::date),
                  (%L::uuid, 60, (now() + interval '45 days')::date)$$, :'r1', :'r2', :'r4', :'r5'),
  'each reminder uses the nearest threshold t >= d of the organisation (defaults without settings)');

insert into runs select 2, public.run_expiry_check(500);
select is((select r from runs where n = 2), '{"transitioned": 0, "reminders": 0, "more": false}'::jsonb,
  'a second run changes nothing');
select is((select count(*)::int from public.cert_expiry_reminders where mentor_id in (:'r1', :'r2', :'r4', :'r5')), 4,
  'a second run records no duplicate reminders');
select is((select count(*)::int from public.sync_queue where mentor_id = :'e1'), 1,
  'a second run enqueues no second job');
select is(public.expire_mentor_if_due(:'e1'), false, 'expire_mentor_if_due of an already expired mentor is false');
select is(public.expire_mentor_if_due(:'e2'), false, 'expire_mentor_if_due of a mentor with a valid certification is false');
select is(public.expire_mentor_if_due(:'e4'), false, 'expire_mentor_if_due of a mentor without certification is false');

-- a checker that was down: R1 now 3 days from expiry with 7 recorded -> nothing; a new cert of
-- R3 expiring in 2 days (30 and 14 missed) -> only 7
update public.certifications set expires_at = now() + interval '2 days' where mentor_id = :'r3';
insert into runs select 3, public.run_expiry_check(500);
select is((select array_agg(threshold_day) from public.cert_expiry_reminders where mentor_id = :'r3'), '{7}'::int[],
  'missed larger thresholds are not sent late: only the nearest one');
select is((select count(*)::int from public.cert_expiry_reminders where mentor_id = :'r1'), 1,
  'a recorded reminder is not followed by stale ones');

-- paging
insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'e5', :'hlf', 'E5', 'active'), (:'e6', :'hlf', 'E6', 'active');
insert into public.certifications (mentor_id, expires_at) values
  (:'e5', now() - interval '2 days'), (:'e6', now() - interval '3 days');
insert into runs select 4, public.run_expiry_check(1);
insert into runs select 5, public.run_expiry_check(1);
insert into runs select 6, public.run_expiry_check(1);
select is((select r -> 'transitioned' from runs where n = 4), '1'::jsonb, 'a page of one transitions one mentor');
select is((select r -> 'more' from runs where n = 4), 'true'::jsonb, 'a full page says more remains');
select is((select r -> 'transitioned' from runs where n = 5), '1'::jsonb, 'the next page transitions the other');
select is((select r from runs where n = 6), '{"transitioned": 0, "reminders": 0, "more": false}'::jsonb,
  'the last page finds nothing and says so');
select is((select count(*)::int from public.peer_mentors where id in (:'e5', :'e6') and status = 'expired_cert'), 2,
  'both mentors were transitioned over the pages');

-- reminders page too
update public.org_sync_settings set reminder_threshold_days = '{100}' where organization_id = :'hlf';
select is(public.run_expiry_check(1) -> 'reminders', '1'::jsonb, 'reminders are paged by p_batch_size as well');

-- the checker is callable as service_role
set local role service_role;
select lives_ok('select public.run_expiry_check(500)', 'service_role can run the expiry check');
reset role;

select * from finish();
rollback;
