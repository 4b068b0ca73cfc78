-- RLS matrix: anon / coordinator of chapter A / coordinator of chapters A+B / coordinator of
-- another organisation's chapter / plain authenticated user / service_role x every table and RPC.
-- Mentors: MA (chapter A), MB (chapter B), MAB (chapters A and B), MC (chapter C, other org).
begin;
select plan(134);

-- Start from empty tables so every count below is exact (all rolled back at the end).
delete from public.sync_audit_log;
delete from public.dead_letter_queue;
delete from public.sync_alerts;
delete from public.coordinator_chapters;
delete from public.organizations;

\set hlf '13000000-0000-0000-0000-000000000001'
\set oth '13000000-0000-0000-0000-000000000002'
\set cha '33000000-0000-0000-0000-00000000000a'
\set chb '33000000-0000-0000-0000-00000000000b'
\set chc '33000000-0000-0000-0000-00000000000c'
\set ma '23000000-0000-0000-0000-00000000000a'
\set mb '23000000-0000-0000-0000-00000000000b'
\set mab '23000000-0000-0000-0000-0000000000ab'
\set mc '23000000-0000-0000-0000-00000000000c'
\set ua '43000000-0000-0000-0000-00000000000a'
\set uab '43000000-0000-0000-0000-0000000000ab'
\set uc '43000000-0000-0000-0000-00000000000c'
\set un '43000000-0000-0000-0000-000000000000'
\set ua_claims '{"sub":"43000000-0000-0000-0000-00000000000a","role":"authenticated"}'
\set uab_claims '{"sub":"43000000-0000-0000-0000-0000000000ab","role":"authenticated"}'
\set uc_claims '{"sub":"43000000-0000-0000-0000-00000000000c","role":"authenticated"}'
\set un_claims '{"sub":"43000000-0000-0000-0000-000000000000","role":"authenticated"}'

insert into public.organizations (id, code) values (:'hlf', 'HLF_T5'), (:'oth', 'OTH_T5');
insert into public.org_sync_settings (organization_id, dynamics_sync_enabled) values (:'hlf', true), (:'oth', true);
insert into public.chapters (id, organization_id, name) values
  (:'cha', :'hlf', 'A'), (:'chb', :'hlf', 'B'), (:'chc', :'oth', 'C');
insert into public.peer_mentors (id, organization_id, full_name, status) values
  (:'ma', :'hlf', 'MA', 'active'), (:'mb', :'hlf', 'MB', 'active'),
  (:'mab', :'hlf', 'MAB', 'active'), (:'mc', :'oth', 'MC', 'active');
insert into public.peer_mentor_chapters (mentor_id, chapter_id) values
  (:'ma', :'cha'), (:'mb', :'chb'), (:'mab', :'cha'), (:'mab', :'chb'), (:'mc', :'chc');
insert into public.coordinator_chapters (user_id, chapter_id) values
  (:'ua', :'cha'), (:'uab', :'cha'), (:'uab', :'chb'), (:'uc', :'chc');
-- one certification per mentor: the trigger enqueues one restore job per mentor
insert into public.certifications (mentor_id, expires_at)
select id, now() + interval '1 year' from public.peer_mentors;
insert into public.mentor_dynamics_contacts (mentor_id, dynamics_contact_id)
select id, gen_random_uuid() from public.peer_mentors;
insert into public.sync_audit_log (mentor_id, event) select id, 'test' from public.peer_mentors;
insert into public.dead_letter_queue (job_id, mentor_id, operation, reason)
select 0, id, 'remove', 'test' from public.peer_mentors;
insert into public.dynamics_sync_failures (mentor_id, error_code) select id, 'TEST' from public.peer_mentors;
insert into public.sync_alerts (kind, mentor_id, message) select 'divergence', id, 'test' from public.peer_mentors;
insert into public.sync_alerts (kind, mentor_id, message) values ('auth_failure', null, 'global');
insert into public.cert_expiry_reminders (mentor_id, threshold_day, certification_expiry_date)
select id, 30, current_date + 30 from public.peer_mentors;

create temp table seen (who text, tbl text, n int) on commit drop;
grant all on seen to public;
create function pg_temp.count_rows(p_tbl text) returns int language plpgsql as $f$
declare n int;
begin
  execute format('select count(*) from public.%I', p_tbl) into n;
  return n;
exception when insufficient_privilege then
  return -1;
end $f$;

create temp table tables (tbl text) on commit drop;
grant all on tables to public;
insert into tables values ('organizations'), ('chapters'), ('peer_mentors'), ('peer_mentor_chapters'),
  ('certifications'), ('coordinator_chapters'), ('org_sync_settings'), ('mentor_dynamics_contacts'),
  ('sync_queue'), ('sync_audit_log'), ('dead_letter_queue'), ('dynamics_sync_failures'),
  ('sync_alerts'), ('cert_expiry_reminders');

set local role anon;
set local request.jwt.claims to '{"role":"anon"}';
insert into seen select 'anon', tbl, pg_temp.count_rows(tbl) from tables;
reset role;

set local role authenticated;
set local request.jwt.claims to :'ua_claims';
insert into seen select 'coordinator_a', tbl, pg_temp.count_rows(tbl) from tables;
set local request.jwt.claims to :'uab_claims';
insert into seen select 'coordinator_ab', tbl, pg_temp.count_rows(tbl) from tables;
set local request.jwt.claims to :'uc_claims';
insert into seen select 'coordinator_other_org', tbl, pg_temp.count_rows(tbl) from tables;
set local request.jwt.claims to :'un_claims';
insert into seen select 'plain_user', tbl, pg_temp.count_rows(tbl) from tables;
reset role;

set local role service_role;
set local request.jwt.claims to '{"role":"service_role"}';
insert into seen select 'service_role', tbl, pg_temp.count_rows(tbl) from tables;
reset role;
set local request.jwt.claims to '';

-- expected row counts: who x table (14 x 5 = 70; anon checked below in one assertion per table)
create temp table expected (who text, tbl text, n int) on commit drop;
insert into expected
select w.who, t.tbl,
       case w.who
         when 'service_role' then case t.tbl when 'organizations' then 2 when 'chapters' then 3
                                             when 'peer_mentor_chapters' then 5 when 'org_sync_settings' then 2
                                             when 'coordinator_chapters' then 4 when 'sync_alerts' then 5 else 4 end
         when 'plain_user' then 0
         when 'coordinator_a' then case t.tbl when 'organizations' then 1 when 'chapters' then 1
                                              when 'peer_mentor_chapters' then 2 when 'org_sync_settings' then 1
                                              when 'coordinator_chapters' then 1 when 'dead_letter_queue' then 0 else 2 end
         when 'coordinator_ab' then case t.tbl when 'organizations' then 1 when 'chapters' then 2
                                               when 'peer_mentor_chapters' then 4 when 'org_sync_settings' then 1
                                               when 'coordinator_chapters' then 2 when 'dead_letter_queue' then 0 else 3 end
         when 'coordinator_other_org' then case t.tbl when 'dead_letter_queue' then 0 else 1 end
       end
  from (values ('service_role'), ('plain_user'), ('coordinator_a'), ('coordinator_ab'), ('coordinator_other_org')) w(who)
  cross join tables t;

-- 70
select is(s.n, e.n, format('%s sees %s row(s) of %s', e.who, e.n, e.tbl))
  from expected e left join seen s using (who, tbl)
 order by e.who, e.tbl;
-- 14
select ok(coalesce(s.n, 1) <= 0, format('anon reads no rows of %s (no policy, or no privilege at all)', t.tbl))
  from tables t left join seen s on s.tbl = t.tbl and s.who = 'anon'
 order by t.tbl;

-- coordinators see exactly their mentors (a mentor in two chapters, a coordinator of two chapters)
set local role authenticated;
set local request.jwt.claims to :'ua_claims';
select results_eq('select full_name from public.peer_mentors order by 1', $$values ('MA'::text), ('MAB')$$,
  'coordinator of A sees MA and MAB (in A and B)');
select results_eq('select full_name from public.sync_status() order by 1', $$values ('MA'::text), ('MAB')$$,
  'sync_status for the coordinator of A returns MA and MAB');
select results_eq(format('select full_name from public.sync_status(array[%L, %L]::uuid[])', :'ma', :'mb'),
  $$values ('MA'::text)$$, 'sync_status silently leaves out a mentor outside the coordinator''s chapters');
select lives_ok(format('select public.sync_request_force(%L)', :'mab'),
  'the coordinator of A may force a sync of MAB');
select throws_ok(format('select public.sync_request_force(%L)', :'mb'), '42501', null,
  'the coordinator of A may not force a sync of MB');
select throws_ok(format('select public.sync_request_force(%L)', '23000000-0000-0000-0000-000000000999'), '42501', null,
  'a force sync of an unknown mentor is refused like any other outside mentor');

-- writes: coordinators write nothing in the sync tables
select throws_ok(format($$insert into public.sync_queue (mentor_id, operation, triggered_by_event) values (%L, 'remove', 'status_change')$$, :'ma'),
  '42501', null, 'a coordinator cannot insert into sync_queue');
select throws_ok($$update public.sync_alerts set acknowledged_at = now()$$, '42501', null,
  'a coordinator cannot update sync_alerts');
select throws_ok($$delete from public.dynamics_sync_failures$$, '42501', null,
  'a coordinator cannot delete dynamics_sync_failures');
select throws_ok($$update public.mentor_dynamics_contacts set last_synced_visible = false$$, '42501', null,
  'a coordinator cannot update mentor_dynamics_contacts');
select throws_ok($$truncate public.sync_queue$$, '42501', null, 'a coordinator cannot truncate sync_queue');
select results_eq(
  format($$select desired_visible, open_job_status, open_failure_code from public.sync_status(array[%L]::uuid[])$$, :'ma'),
  $$values (true, 'pending'::text, 'TEST'::text)$$,
  'sync_status reports desired visibility, the open job and the open failure');
reset role;
select is((select triggered_by_event from public.sync_queue where mentor_id = :'mab' and status = 'pending'),
  'manual_coordinator_action', 'the coordinator''s force sync is queued as manual_coordinator_action');

set local role authenticated;
set local request.jwt.claims to :'uab_claims';
select results_eq('select full_name from public.sync_status() order by 1', $$values ('MA'::text), ('MAB'), ('MB')$$,
  'sync_status for the coordinator of A and B returns MA, MAB and MB');
select results_eq(format('select full_name from public.sync_status(array[%L]::uuid[])', :'mb'),
  $$values ('MB'::text)$$, 'the coordinator of A and B may ask for MB alone');

set local request.jwt.claims to :'uc_claims';
select results_eq('select full_name from public.sync_status()', $$values ('MC'::text)$$,
  'sync_status for the coordinator of the other organisation returns only MC');

set local request.jwt.claims to :'un_claims';
select is((select count(*)::int from public.sync_status()), 0, 'sync_status for a plain authenticated user is empty');
select throws_ok(format('select public.sync_request_force(%L)', :'ma'), '42501', null,
  'a plain authenticated user may not force a sync');

-- authenticated (even with a service_role claim it cannot sign) may call no service RPC
set local request.jwt.claims to '{"role":"service_role"}';
select is((select count(*)::int from public.sync_status()), 0,
  'an authenticated session claiming role service_role still sees nothing through sync_status');
select throws_ok(sql, '42501', null, format('authenticated may not call %s', name))
  from (values
    ('sync_claim', 'select public.sync_claim(1, 60)'),
    ('sync_enqueue', format('select public.sync_enqueue(%L, %L)', :'ma', 'reconciliation')),
    ('sync_complete', 'select public.sync_complete(1, 1, ''synced'', true)'),
    ('sync_redrive', 'select public.sync_redrive(1)'),
    ('sync_record_alert', 'select public.sync_record_alert(''divergence'', null, ''x'')'),
    ('sync_acknowledge_alerts', 'select public.sync_acknowledge_alerts(null)'),
    ('run_expiry_check', 'select public.run_expiry_check(1)'),
    ('expire_mentor_if_due', format('select public.expire_mentor_if_due(%L)', :'ma')),
    ('sync_reconcile_page', 'select public.sync_reconcile_page(null, 1)'),
    ('sync_prune', 'select public.sync_prune(30, 180)'),
    ('coordinator_can_access_mentor', format('select public.coordinator_can_access_mentor(%L, %L)', :'ua', :'ma')),
    ('mentor_desired_visible', format('select public.mentor_desired_visible(%L)', :'ma'))
  ) as rpc(name, sql)
 order by name;
reset role;

set local role anon;
set local request.jwt.claims to '{"role":"anon"}';
select throws_ok('select * from public.sync_status()', '42501', null, 'anon may not call sync_status');
select throws_ok(format('select public.sync_request_force(%L)', :'ma'), '42501', null, 'anon may not call sync_request_force');
reset role;

set local role service_role;
set local request.jwt.claims to '{"role":"service_role"}';
select is((select count(*)::int from public.sync_status()), 4, 'sync_status for service_role returns every mentor');
select lives_ok(format('select public.sync_request_force(%L)', :'mb'), 'service_role may force a sync of any mentor');
select throws_ok(format('select public.sync_request_force(%L)', '23000000-0000-0000-0000-000000000999'), 'P0002', null,
  'service_role gets no_data_found for an unknown mentor');
reset role;
set local request.jwt.claims to '';

select ok(has_function_privilege('service_role', p.oid, 'execute'), format('service_role may execute %s', p.oid::regprocedure))
  from pg_proc p
 where p.pronamespace = 'public'::regnamespace
   and p.proname in ('sync_claim', 'sync_enqueue', 'sync_complete', 'sync_redrive', 'sync_record_alert',
                     'sync_acknowledge_alerts', 'run_expiry_check', 'expire_mentor_if_due', 'sync_reconcile_page',
                     'sync_prune', 'coordinator_can_access_mentor', 'mentor_desired_visible', 'sync_status',
                     'sync_request_force')
 order by p.proname;

select * from finish();
rollback;
