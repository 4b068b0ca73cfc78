-- The contract's table and column names, RLS on every table, function signatures and their
-- security attributes.
begin;
select plan(124);

create temp table contract_columns (tbl text, col text) on commit drop;
insert into contract_columns values
  ('organizations', 'id'), ('organizations', 'code'),
  ('chapters', 'id'), ('chapters', 'organization_id'), ('chapters', 'name'),
  ('peer_mentors', 'id'), ('peer_mentors', 'organization_id'), ('peer_mentors', 'full_name'),
  ('peer_mentors', 'status'),
  ('peer_mentor_chapters', 'mentor_id'), ('peer_mentor_chapters', 'chapter_id'),
  ('certifications', 'id'), ('certifications', 'mentor_id'), ('certifications', 'expires_at'),
  ('coordinator_chapters', 'user_id'), ('coordinator_chapters', 'chapter_id'),
  ('org_sync_settings', 'organization_id'), ('org_sync_settings', 'dynamics_sync_enabled'),
  ('org_sync_settings', 'reminder_threshold_days'),
  ('mentor_dynamics_contacts', 'mentor_id'), ('mentor_dynamics_contacts', 'dynamics_contact_id'),
  ('mentor_dynamics_contacts', 'last_synced_visible'), ('mentor_dynamics_contacts', 'last_synced_at'),
  ('sync_queue', 'id'), ('sync_queue', 'mentor_id'), ('sync_queue', 'operation'),
  ('sync_queue', 'status'), ('sync_queue', 'triggered_by_event'), ('sync_queue', 'attempts'),
  ('sync_queue', 'next_attempt_at'), ('sync_queue', 'locked_until'), ('sync_queue', 'last_error'),
  ('sync_queue', 'created_at'), ('sync_queue', 'updated_at'),
  ('sync_audit_log', 'id'), ('sync_audit_log', 'mentor_id'), ('sync_audit_log', 'job_id'),
  ('sync_audit_log', 'event'), ('sync_audit_log', 'operation'), ('sync_audit_log', 'http_status'),
  ('sync_audit_log', 'error_code'), ('sync_audit_log', 'attempt'), ('sync_audit_log', 'duration_ms'),
  ('sync_audit_log', 'created_at'),
  ('dead_letter_queue', 'id'), ('dead_letter_queue', 'job_id'), ('dead_letter_queue', 'mentor_id'),
  ('dead_letter_queue', 'operation'), ('dead_letter_queue', 'reason'),
  ('dead_letter_queue', 'error_code'), ('dead_letter_queue', 'payload'),
  ('dead_letter_queue', 'created_at'), ('dead_letter_queue', 'redriven_at'),
  ('dynamics_sync_failures', 'id'), ('dynamics_sync_failures', 'mentor_id'),
  ('dynamics_sync_failures', 'job_id'), ('dynamics_sync_failures', 'error_code'),
  ('dynamics_sync_failures', 'message'), ('dynamics_sync_failures', 'created_at'),
  ('dynamics_sync_failures', 'resolved_at'),
  ('sync_alerts', 'id'), ('sync_alerts', 'kind'), ('sync_alerts', 'mentor_id'),
  ('sync_alerts', 'message'), ('sync_alerts', 'created_at'), ('sync_alerts', 'acknowledged_at'),
  ('cert_expiry_reminders', 'mentor_id'), ('cert_expiry_reminders', 'threshold_day'),
  ('cert_expiry_reminders', 'certification_expiry_date'), ('cert_expiry_reminders', 'created_at');

-- 70 columns
select has_column('public', tbl, col, format('contract column public.%s.%s exists', tbl, col))
  from contract_columns order by tbl, col;

-- 14 tables with RLS enabled
select ok(c.relrowsecurity, format('RLS is enabled on public.%s', t.tbl))
  from (select distinct tbl from contract_columns) t
  join pg_class c on c.oid = format('public.%I', t.tbl)::regclass
 order by t.tbl;

-- column types that other code relies on (12)
select col_type_is('public', 'sync_queue', 'id', 'bigint', 'sync_queue.id is bigint');
select col_type_is('public', 'sync_queue', 'mentor_id', 'uuid', 'sync_queue.mentor_id is uuid');
select col_type_is('public', 'sync_queue', 'attempts', 'integer', 'sync_queue.attempts is int');
select col_type_is('public', 'sync_queue', 'locked_until', 'timestamp with time zone', 'sync_queue.locked_until is timestamptz');
select col_type_is('public', 'mentor_dynamics_contacts', 'dynamics_contact_id', 'uuid', 'dynamics_contact_id is uuid');
select col_type_is('public', 'mentor_dynamics_contacts', 'last_synced_visible', 'boolean', 'last_synced_visible is boolean');
select col_type_is('public', 'dead_letter_queue', 'payload', 'jsonb', 'dead_letter_queue.payload is jsonb');
select col_type_is('public', 'org_sync_settings', 'reminder_threshold_days', 'integer[]', 'reminder_threshold_days is int[]');
select col_default_is('public', 'org_sync_settings', 'reminder_threshold_days', '{30,14,7}', 'reminder thresholds default to {30,14,7}');
select col_type_is('public', 'cert_expiry_reminders', 'certification_expiry_date', 'date', 'certification_expiry_date is date');
select col_is_pk('public', 'mentor_dynamics_contacts', 'mentor_id', 'mentor_dynamics_contacts is keyed by mentor_id');
select col_is_pk('public', 'org_sync_settings', 'organization_id', 'org_sync_settings is keyed by organization_id');

-- constraints (8)
select col_is_unique('public', 'cert_expiry_reminders',
  array['mentor_id', 'threshold_day', 'certification_expiry_date'],
  'cert_expiry_reminders is unique on (mentor_id, threshold_day, certification_expiry_date)');
select col_is_unique('public', 'organizations', array['code'], 'organizations.code is unique');

insert into public.organizations (id, code) values ('00000000-0000-0000-0000-0000000000a1', 'SCHEMA_TEST');
insert into public.peer_mentors (id, organization_id, full_name)
values ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'Schema Test');

select throws_ok($$ update public.peer_mentors set status = 'retired' where id = '00000000-0000-0000-0000-0000000000b1' $$,
  '23514', null, 'peer_mentors.status rejects values outside active/paused/expired_cert');
select throws_ok($$ insert into public.sync_queue (mentor_id, operation, triggered_by_event) values ('00000000-0000-0000-0000-0000000000b1', 'delete', 'status_change') $$,
  '23514', null, 'sync_queue.operation only accepts remove/restore');
select throws_ok($$ insert into public.sync_queue (mentor_id, operation, triggered_by_event, status) values ('00000000-0000-0000-0000-0000000000b1', 'remove', 'status_change', 'waiting') $$,
  '23514', null, 'sync_queue.status only accepts pending/processing/done/dead');
select throws_ok($$ insert into public.sync_queue (mentor_id, operation, triggered_by_event) values ('00000000-0000-0000-0000-0000000000b1', 'remove', 'cron') $$,
  '23514', null, 'sync_queue.triggered_by_event only accepts the contract''s events');
select throws_ok($$ insert into public.sync_alerts (kind, message) values ('info', 'x') $$,
  '23514', null, 'sync_alerts.kind only accepts the contract''s kinds');
select throws_ok($$ insert into public.sync_queue (mentor_id, operation, triggered_by_event) values ('00000000-0000-0000-0000-0000000000b1', 'remove', 'status_change'), ('00000000-0000-0000-0000-0000000000b1', 'restore', 'status_change') $$,
  '23505', null, 'a second pending job of one mentor is refused by the partial unique index');

-- RPC signatures (14)
select has_function('public', 'sync_claim', array['integer', 'integer', 'uuid'], 'sync_claim(int, int, uuid) exists');
select has_function('public', 'sync_enqueue', array['uuid', 'text'], 'sync_enqueue(uuid, text) exists');
select has_function('public', 'sync_complete', array['bigint', 'integer', 'text', 'boolean', 'timestamp with time zone', 'text', 'text', 'jsonb'], 'sync_complete(...) exists');
select has_function('public', 'sync_redrive', array['bigint'], 'sync_redrive(bigint) exists');
select has_function('public', 'sync_record_alert', array['text', 'uuid', 'text'], 'sync_record_alert(text, uuid, text) exists');
select has_function('public', 'sync_acknowledge_alerts', array['text'], 'sync_acknowledge_alerts(text) exists');
select has_function('public', 'run_expiry_check', array['integer'], 'run_expiry_check(int) exists');
select has_function('public', 'expire_mentor_if_due', array['uuid'], 'expire_mentor_if_due(uuid) exists');
select has_function('public', 'sync_status', array['uuid[]'], 'sync_status(uuid[]) exists');
select has_function('public', 'sync_request_force', array['uuid'], 'sync_request_force(uuid) exists');
select has_function('public', 'coordinator_can_access_mentor', array['uuid', 'uuid'], 'coordinator_can_access_mentor(uuid, uuid) exists');
select has_function('public', 'sync_reconcile_page', array['uuid', 'integer'], 'sync_reconcile_page(uuid, int) exists');
select has_function('public', 'sync_prune', array['integer', 'integer'], 'sync_prune(int, int) exists');
select has_function('public', 'mentor_desired_visible', array['uuid'], 'mentor_desired_visible(uuid) exists');

-- security attributes (3)
select is(
  array(select p.proname::text from pg_proc p
         where p.pronamespace = 'public'::regnamespace and p.prosecdef
           and not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
         order by 1),
  '{}'::text[],
  'every security definer function in public has a fixed search_path');
select is(
  array(select p.proname::text from pg_proc p
         where p.pronamespace = 'public'::regnamespace
           and (p.proname like 'sync\_%' or p.proname in ('run_expiry_check', 'expire_mentor_if_due',
                'mentor_desired_visible', 'coordinator_can_access_mentor', 'org_sync_enabled'))
           and has_function_privilege('anon', p.oid, 'execute')
         order by 1),
  '{}'::text[],
  'anon may execute none of the sync functions');
select is(
  array(select p.proname::text from pg_proc p
         where p.pronamespace = 'public'::regnamespace
           and (p.proname like 'sync\_%' or p.proname in ('run_expiry_check', 'expire_mentor_if_due',
                'mentor_desired_visible', 'coordinator_can_access_mentor', 'org_sync_enabled'))
           and has_function_privilege('authenticated', p.oid, 'execute')
         order by 1),
  array['sync_caller_is_service', 'sync_request_force', 'sync_status'],
  'authenticated may execute only sync_status, sync_request_force (and the caller check)');

-- triggers (2)
select has_trigger('public', 'peer_mentors', 'hlf_sync_mentor_status', 'peer_mentors has the outbox trigger');
select has_trigger('public', 'certifications', 'hlf_sync_certification_change', 'certifications has the outbox trigger');

-- migrations are recorded (1)
select ok((select count(*) from supabase_migrations.schema_migrations) >= 8,
  'scripts/migrate.sh recorded the applied migrations');

select * from finish();
rollback;
