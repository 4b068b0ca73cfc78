-- Outbox and expiry checker (migrations …0400, …0600): the coalescing upsert's cheaper paths and the certification-driven expiry
-- checker keep the contract (rules as in 02_outbox_trigger / 04_expiry_check).
begin;
select plan(12);

\set org '18000000-0000-0000-0000-000000000001'
\set a '28000000-0000-0000-0000-000000000001'
\set b '28000000-0000-0000-0000-000000000002'
\set c '28000000-0000-0000-0000-000000000003'
\set d '28000000-0000-0000-0000-000000000004'

insert into public.organizations (id, code) values (:'org', 'PERF_T8');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled, reminder_threshold_days)
  values (:'org', true, '{45,7}');
insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'a', :'org', 'A', 'active'), (:'b', :'org', 'B', 'active'),
  (:'c', :'org', 'C', 'active'), (:'d', :'org', 'D', 'active');

select has_index('public', 'certifications', 'certifications_expires_mentor_idx',
  array['expires_at', 'mentor_id'], 'certifications (expires_at, mentor_id) is indexed');

-- coalescing: a new pending row, then the same intent again (due) changes nothing
create temp table j on commit drop as
  select public.sync_upsert_pending(:'a', 'remove', 'status_change') as id;
update public.sync_queue set next_attempt_at = now() - interval '1 minute',
                             updated_at = now() - interval '1 minute' where id = (select id from j);
select is(public.sync_upsert_pending(:'a', 'remove', 'status_change'), (select id from j),
  'the same intent returns the pending job''s id');
select ok((select next_attempt_at < now() and updated_at < now() from public.sync_queue where id = (select id from j)),
  'the same intent on a due job leaves it untouched (keeps its place in the queue)');
select is(public.sync_upsert_pending(:'a', 'restore', 'manual_coordinator_action'), (select id from j),
  'a new intent coalesces into the pending job');
select results_eq(
  format($$select operation, triggered_by_event, next_attempt_at < now() from public.sync_queue where id = %s$$, (select id from j)),
  $$values ('restore'::text, 'manual_coordinator_action'::text, true)$$,
  'the new intent is recorded; a due job stays due at its earlier time');
update public.sync_queue set next_attempt_at = now() + interval '1 hour' where id = (select id from j);
select is(public.sync_upsert_pending(:'a', 'restore', 'manual_coordinator_action'), (select id from j),
  'the same intent on a job in backoff returns its id');
select ok((select next_attempt_at <= now() from public.sync_queue where id = (select id from j)),
  'the same intent makes a job waiting in backoff due now');
select is((select count(*)::int from public.sync_queue where mentor_id = :'a'), 1, 'still one job');

-- expiry: b has an old expired certification and a valid one (no transition); c only expired
-- ones (transition); d's latest certification is 40 days away: the organisation's 45-day
-- threshold applies although it is beyond the default 30 days.
set local session_replication_role = replica;
insert into public.certifications (mentor_id, expires_at) values
  (:'b', now() - interval '400 days'), (:'b', now() + interval '300 days'),
  (:'c', now() - interval '400 days'), (:'c', now() - interval '2 days'),
  (:'d', now() - interval '10 days'), (:'d', now() + interval '10 days'), (:'d', now() + interval '40 days');
set local session_replication_role = origin;
do $$ begin
  while (public.run_expiry_check(1) ->> 'more')::boolean loop end loop;
end $$;
select results_eq(
  format($$select id, status from public.peer_mentors where id in (%L, %L, %L) order by id$$, :'b', :'c', :'d'),
  format($$values (%L::uuid, 'active'::text), (%L::uuid, 'expired_cert'::text), (%L::uuid, 'active'::text)$$, :'b', :'c', :'d'),
  'only the mentor whose certifications all expired is transitioned');
select results_eq(
  format($$select threshold_day, certification_expiry_date from public.cert_expiry_reminders where mentor_id = %L$$, :'d'),
  $$values (45, ((now() + interval '40 days') at time zone 'UTC')::date)$$,
  'the reminder uses the latest certification and the organisation''s larger threshold');
select is((select count(*)::int from public.cert_expiry_reminders where mentor_id in (:'b', :'c')), 0,
  'no reminder for a certification beyond every threshold or for an expired mentor');
select is(public.run_expiry_check(500), '{"transitioned": 0, "reminders": 0, "more": false}'::jsonb,
  'a second run finds nothing to do');

select * from finish();
rollback;
