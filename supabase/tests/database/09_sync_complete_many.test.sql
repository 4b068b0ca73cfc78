-- sync_complete_many: several sync_complete calls in one round trip, each element with the same
-- fencing and effects as sync_complete, results per job; a bad element rolls the call back.
begin;
select plan(10);

\set hlf '19000000-0000-0000-0000-000000000001'
\set a '29000000-0000-0000-0000-00000000000a'
\set b '29000000-0000-0000-0000-00000000000b'
\set c '29000000-0000-0000-0000-00000000000c'

-- Only this test's jobs are due: park everything else.
update public.sync_queue set next_attempt_at = now() + interval '10 years' where status = 'pending';
update public.sync_queue set locked_until = now() + interval '10 years' where status = 'processing';

insert into public.organizations (id, code) values (:'hlf', 'HLF_T9');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled) values (:'hlf', true);
insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'a', :'hlf', 'A', 'active'), (:'b', :'hlf', 'B', 'active'), (:'c', :'hlf', 'C', 'active');
insert into public.certifications (mentor_id, expires_at) values
  (:'a', '2100-01-01'), (:'b', '2100-01-01'), (:'c', '2100-01-01');
insert into public.mentor_dynamics_contacts (mentor_id, dynamics_contact_id) values
  (:'a', gen_random_uuid()), (:'b', gen_random_uuid()), (:'c', gen_random_uuid());
delete from public.sync_queue where mentor_id in (:'a', :'b', :'c');

select has_function('public', 'sync_complete_many', array['jsonb'], 'sync_complete_many(jsonb) exists');
select ok(not has_function_privilege('anon', 'public.sync_complete_many(jsonb)', 'execute')
      and not has_function_privilege('authenticated', 'public.sync_complete_many(jsonb)', 'execute'),
  'sync_complete_many is not executable by anon or authenticated');

create temp table ids (k text primary key, v bigint) on commit drop;
insert into ids select 'a', public.sync_enqueue(:'a', 'reconciliation');
insert into ids select 'b', public.sync_enqueue(:'b', 'reconciliation');
insert into ids select 'c', public.sync_enqueue(:'c', 'reconciliation');
create temp table claimed on commit drop as select * from public.sync_claim(10, 120);
select is((select count(*)::int from claimed), 3, 'three jobs claimed');

create temp table res on commit drop as
select public.sync_complete_many(jsonb_build_array(
  jsonb_build_object('job_id', (select v from ids where k = 'c'), 'attempt', 1, 'outcome', 'retry',
    'retry_at', now() + interval '1 hour', 'error_code', 'HTTP_500', 'message', 'boom',
    'audit', '[{"attempt":1,"httpStatus":500,"errorCode":"HTTP_500","durationMs":3}]'::jsonb),
  jsonb_build_object('job_id', (select v from ids where k = 'a'), 'attempt', 1, 'outcome', 'synced',
    'visible', true,
    'audit', '[{"attempt":1,"httpStatus":204,"durationMs":2}]'::jsonb),
  jsonb_build_object('job_id', (select v from ids where k = 'b'), 'attempt', 7, 'outcome', 'synced',
    'visible', true)
)) as r;

select is((select jsonb_array_length(r) from res), 3, 'one result per item');
select results_eq(
  $$select (e ->> 'job_id')::bigint, e ->> 'applied', e ->> 'reason'
      from res, jsonb_array_elements(r) e order by (e ->> 'job_id')::bigint$$,
  format($$values (%s::bigint, 'true'::text, null::text), (%s, 'false', 'stale'), (%s, 'true', null)$$,
    (select v from ids where k = 'a'), (select v from ids where k = 'b'), (select v from ids where k = 'c')),
  'applied per job; a stale attempt is fenced off as by sync_complete');
select results_eq(
  format($$select mentor_id, status from public.sync_queue where mentor_id in (%L, %L, %L) order by mentor_id$$,
    :'a', :'b', :'c'),
  format($$values (%L::uuid, 'done'::text), (%L::uuid, 'processing'), (%L::uuid, 'pending')$$, :'a', :'b', :'c'),
  'synced → done, stale untouched, retry → pending');
select is((select last_synced_visible from public.mentor_dynamics_contacts where mentor_id = :'a'), true,
  'synced records the mapping as sync_complete does');
select is((select count(*)::int from public.dynamics_sync_failures where mentor_id = :'c' and resolved_at is null), 1,
  'retry opens a failure as sync_complete does');
select is((select count(*)::int from public.sync_audit_log
            where job_id in (select v from ids where k in ('a', 'c')) and event = 'dynamics_attempt'), 2,
  'audit items become audit rows');

select throws_ok(
  format($$select public.sync_complete_many(jsonb_build_array(
      jsonb_build_object('job_id', %s, 'attempt', 1, 'outcome', 'skipped'),
      jsonb_build_object('job_id', %s, 'attempt', 1, 'outcome', 'bogus')))$$,
    (select v from ids where k = 'b'), (select v from ids where k = 'c')),
  '22023', null, 'an invalid element raises (and the call rolls back)');

select * from finish();
rollback;
