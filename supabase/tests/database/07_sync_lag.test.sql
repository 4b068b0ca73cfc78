-- sync_lag: mentors whose last synced visibility differs from the desired one, and since when
-- (oldest open job, else open failure, else newest open dead letter, else last_synced_at).
begin;
select plan(12);

\set hlf '17000000-0000-0000-0000-000000000001'
\set off '17000000-0000-0000-0000-000000000002'
\set a '27000000-0000-0000-0000-00000000000a'
\set b '27000000-0000-0000-0000-00000000000b'
\set c '27000000-0000-0000-0000-00000000000c'
\set d '27000000-0000-0000-0000-00000000000d'
\set e '27000000-0000-0000-0000-00000000000e'
\set f '27000000-0000-0000-0000-00000000000f'
\set x '27000000-0000-0000-0000-0000000000ff'

insert into public.organizations (id, code) values (:'hlf', 'HLF_T7'), (:'off', 'OFF_T7');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled)
values (:'hlf', true), (:'off', false);
insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'a', :'hlf', 'A in sync', 'active'),
  (:'b', :'hlf', 'B paused, job queued', 'paused'),
  (:'c', :'hlf', 'C paused, open failure', 'paused'),
  (:'d', :'hlf', 'D active, dead letter', 'active'),
  (:'e', :'hlf', 'E active, nothing open', 'active'),
  (:'f', :'hlf', 'F never synced', 'active'),
  (:'x', :'off', 'X sync disabled', 'paused');
insert into public.certifications (mentor_id, expires_at)
select id, now() + interval '1 year' from public.peer_mentors
 where id in (:'a', :'b', :'c', :'d', :'e', :'f', :'x');
insert into public.mentor_dynamics_contacts
  (mentor_id, dynamics_contact_id, last_synced_visible, last_synced_at) values
  (:'a', gen_random_uuid(), true, now() - interval '3 days'),
  (:'b', gen_random_uuid(), true, now() - interval '3 days'),
  (:'c', gen_random_uuid(), true, now() - interval '3 days'),
  (:'d', gen_random_uuid(), false, now() - interval '3 days'),
  (:'e', gen_random_uuid(), false, now() - interval '1 day'),
  (:'f', gen_random_uuid(), null, null),
  (:'x', gen_random_uuid(), true, now() - interval '3 days');
delete from public.sync_queue where mentor_id in (:'a', :'b', :'c', :'d', :'e', :'f', :'x');

insert into public.sync_queue (mentor_id, operation, triggered_by_event, created_at)
values (:'b', 'remove', 'status_change', now() - interval '10 minutes');
insert into public.sync_queue (mentor_id, operation, status, triggered_by_event, created_at)
values (:'b', 'remove', 'done', 'status_change', now() - interval '5 days');
insert into public.dynamics_sync_failures (mentor_id, error_code, created_at)
values (:'c', 'SERVER_ERROR', now() - interval '1 hour');
insert into public.dead_letter_queue (job_id, mentor_id, operation, reason, created_at) values
  (1, :'d', 'restore', 'old, redriven', now() - interval '9 hours'),
  (2, :'d', 'restore', 'open', now() - interval '2 hours');
update public.dead_letter_queue set redriven_at = now() where reason = 'old, redriven';

create temp table lag on commit drop as
select * from public.sync_lag(array[:'a', :'b', :'c', :'d', :'e', :'f', :'x']::uuid[]);

select is((select count(*)::int from lag), 5,
  'five mentors lag: the in-sync mentor and the sync-disabled organisation are left out');
select ok(not exists (select 1 from lag where mentor_id in (:'a', :'x')),
  'an in-sync mentor and a mentor of a sync-disabled organisation never lag');
select is((select lag_seconds from lag where mentor_id = :'b'), 600::bigint,
  'a queued change lags since its oldest unfinished job');
select is((select lag_seconds from lag where mentor_id = :'c'), 3600::bigint,
  'without a job, since the open failure');
select is((select lag_seconds from lag where mentor_id = :'d'), 7200::bigint,
  'without a job or failure, since the newest dead letter not yet redriven');
select is((select lag_seconds from lag where mentor_id = :'e'), 86400::bigint,
  'with nothing open, since the last sync (an upper bound)');
select is((select row(desired_visible, last_synced_visible, since, lag_seconds)::text from lag
            where mentor_id = :'f'), row(true, null::boolean, null::timestamptz, null::bigint)::text,
  'a never synced mentor lags, with an unknown start');
select is((select array_agg(mentor_id order by ord) from
            (select mentor_id, row_number() over () as ord from lag) t),
  array[:'e', :'d', :'c', :'b', :'f']::uuid[],
  'ordered oldest first, unknown starts last');
select is((select count(*)::int from public.sync_lag(array[:'b']::uuid[])), 1,
  'the mentor filter restricts the report');
select ok((select count(*) from public.sync_lag(null)) >= 5, 'null means every mentor');

set local role authenticated;
select throws_ok('select * from public.sync_lag(null)', '42501', null,
  'authenticated may not call sync_lag');
reset role;
set local role service_role;
select lives_ok('select * from public.sync_lag(null)', 'service_role may call sync_lag');
reset role;

select * from finish();
rollback;
