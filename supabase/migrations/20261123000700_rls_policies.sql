-- RLS design. Every table has RLS enabled (in the migration that creates it). Policies:
--   * anon: no policy anywhere -> sees nothing.
--   * authenticated (coordinators, assigned through coordinator_chapters): SELECT only, and only
--     rows of mentors / chapters / organisations they coordinate. A mentor in several chapters is
--     visible to the coordinators of each; a coordinator of several chapters sees all of them.
--     No INSERT/UPDATE/DELETE policy on the sync tables (writes also revoked): coordinators
--     change sync state only through the security-definer RPCs sync_status/sync_request_force.
--   * dead_letter_queue is operator-only: no coordinator policy.
--   * service_role has BYPASSRLS and does everything.
-- Policies use "x in (select public.my_coordinated_...())" so the scope is computed once per
-- query. Created only when absent (CREATE POLICY has no IF NOT EXISTS in PG15), so the migration
-- is safe on a real project whose app tables already carry their own policies.

do $$
declare
  p record;
begin
  for p in
    select * from (values
      ('organizations', 'hlf_coordinator_read_organizations',
       'id in (select public.my_coordinated_organization_ids())'),
      ('chapters', 'hlf_coordinator_read_chapters',
       'id in (select public.my_coordinated_chapter_ids())'),
      ('peer_mentors', 'hlf_coordinator_read_peer_mentors',
       'id in (select public.my_coordinated_mentor_ids())'),
      ('peer_mentor_chapters', 'hlf_coordinator_read_peer_mentor_chapters',
       'chapter_id in (select public.my_coordinated_chapter_ids())'),
      ('certifications', 'hlf_coordinator_read_certifications',
       'mentor_id in (select public.my_coordinated_mentor_ids())'),
      ('coordinator_chapters', 'hlf_coordinator_read_own_assignments',
       'user_id = (select auth.uid())'),
      ('org_sync_settings', 'hlf_coordinator_read_org_sync_settings',
       'organization_id in (select public.my_coordinated_organization_ids())'),
      ('mentor_dynamics_contacts', 'hlf_coordinator_read_mentor_dynamics_contacts',
       'mentor_id in (select public.my_coordinated_mentor_ids())'),
      ('sync_queue', 'hlf_coordinator_read_sync_queue',
       'mentor_id in (select public.my_coordinated_mentor_ids())'),
      ('sync_audit_log', 'hlf_coordinator_read_sync_audit_log',
       'mentor_id in (select public.my_coordinated_mentor_ids())'),
      ('dynamics_sync_failures', 'hlf_coordinator_read_dynamics_sync_failures',
       'mentor_id in (select public.my_coordinated_mentor_ids())'),
      ('sync_alerts', 'hlf_coordinator_read_sync_alerts',
       'mentor_id in (select public.my_coordinated_mentor_ids())'),
      ('cert_expiry_reminders', 'hlf_coordinator_read_cert_expiry_reminders',
       'mentor_id in (select public.my_coordinated_mentor_ids())')
    ) as t(tbl, name, expr)
  loop
    if not exists (select 1 from pg_policies
                    where schemaname = 'public' and tablename = p.tbl and policyname = p.name) then
      execute format('create policy %I on public.%I for select to authenticated using (%s)',
                     p.name, p.tbl, p.expr);
    end if;
  end loop;
end
$$;

-- Sync status per mentor. Coordinators (authenticated) get only mentors of their chapters (ids
-- outside them are simply not returned); callers that bypass RLS (service_role, a direct postgres
-- connection) get every mentor, or the given ones. p_mentor_ids null = all in scope.
create or replace function public.sync_status(p_mentor_ids uuid[] default null)
returns table (
  mentor_id uuid,
  full_name text,
  desired_visible boolean,
  last_synced_visible boolean,
  last_synced_at timestamptz,
  open_job_id bigint,
  open_job_status text,
  open_failure_id bigint,
  open_failure_code text,
  open_failure_message text
)
language plpgsql
stable
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
  v_service boolean := public.sync_caller_is_service();
  v_uid uuid := auth.uid();
begin
  if not v_service and v_uid is null then
    return;
  end if;
  return query
  select pm.id, pm.full_name, public.mentor_desired_visible(pm.id),
         m.last_synced_visible, m.last_synced_at,
         j.id, j.status, f.id, f.error_code, f.message
    from public.peer_mentors pm
    left join public.mentor_dynamics_contacts m on m.mentor_id = pm.id
    left join lateral (
      select q.id, q.status from public.sync_queue q
       where q.mentor_id = pm.id and q.status in ('pending', 'processing')
       order by (q.status = 'processing') desc, q.id desc
       limit 1) j on true
    left join public.dynamics_sync_failures f
      on f.mentor_id = pm.id and f.resolved_at is null
   where (p_mentor_ids is null or pm.id = any (p_mentor_ids))
     and (v_service or public.coordinator_can_access_mentor(v_uid, pm.id))
   order by pm.full_name, pm.id;
end
$$;

-- Force sync requested by a coordinator of one of the mentor's chapters (or the service):
-- enqueues with 'manual_coordinator_action' and returns the job id. Anyone else:
-- insufficient_privilege (42501), also for an unknown mentor so existence does not leak; the
-- service gets no_data_found (P0002) for an unknown mentor.
create or replace function public.sync_request_force(p_mentor_id uuid)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not public.sync_caller_is_service()
     and not public.coordinator_can_access_mentor(auth.uid(), p_mentor_id) then
    raise exception 'not a coordinator of mentor %', p_mentor_id using errcode = '42501';
  end if;
  return public.sync_enqueue(p_mentor_id, 'manual_coordinator_action');
end
$$;

revoke all on function public.sync_status(uuid[]), public.sync_request_force(uuid)
  from public, anon;
grant execute on function public.sync_status(uuid[]), public.sync_request_force(uuid)
  to authenticated, service_role;

-- Realtime: coordinators may subscribe to dynamics_sync_failures (RLS applies to Realtime).
do $$
begin
  if exists (select 1 from pg_publication where pubname = 'supabase_realtime')
     and not exists (select 1 from pg_publication_tables
                      where pubname = 'supabase_realtime' and schemaname = 'public'
                        and tablename = 'dynamics_sync_failures') then
    alter publication supabase_realtime add table public.dynamics_sync_failures;
  end if;
end
$$;
