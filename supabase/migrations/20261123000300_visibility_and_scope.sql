-- Shared SQL helpers: desired visibility (the single definition used by the trigger, the queue
-- RPCs, sync_status and reconciliation) and coordinator scope.

-- visible <=> status = 'active' AND latest certification expires_at > now() AND org sync enabled.
-- "Latest certification expires after now" is the same as "some certification expires after now".
create or replace function public.mentor_desired_visible(p_mentor_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select exists (
    select 1
      from public.peer_mentors pm
      join public.org_sync_settings s
        on s.organization_id = pm.organization_id and s.dynamics_sync_enabled
     where pm.id = p_mentor_id
       and pm.status = 'active'
       and exists (select 1 from public.certifications c
                    where c.mentor_id = pm.id and c.expires_at > now())
  )
$$;

create or replace function public.org_sync_enabled(p_organization_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select coalesce((select s.dynamics_sync_enabled from public.org_sync_settings s
                    where s.organization_id = p_organization_id), false)
$$;

-- Does user p_user_id coordinate a chapter that mentor p_mentor_id belongs to?
create or replace function public.coordinator_can_access_mentor(p_user_id uuid, p_mentor_id uuid)
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select p_user_id is not null and exists (
    select 1
      from public.peer_mentor_chapters pmc
      join public.coordinator_chapters cc on cc.chapter_id = pmc.chapter_id
     where pmc.mentor_id = p_mentor_id and cc.user_id = p_user_id
  )
$$;

-- The mentors / chapters / organisations the calling user (auth.uid()) coordinates; used by the
-- RLS policies as "x in (select ...)" so they are evaluated once per query.
create or replace function public.my_coordinated_mentor_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select distinct pmc.mentor_id
    from public.peer_mentor_chapters pmc
    join public.coordinator_chapters cc on cc.chapter_id = pmc.chapter_id
   where cc.user_id = auth.uid()
$$;

create or replace function public.my_coordinated_chapter_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select cc.chapter_id from public.coordinator_chapters cc where cc.user_id = auth.uid()
$$;

create or replace function public.my_coordinated_organization_ids()
returns setof uuid
language sql
stable
security definer
set search_path = ''
as $$
  select distinct c.organization_id
    from public.chapters c
    join public.coordinator_chapters cc on cc.chapter_id = c.id
   where cc.user_id = auth.uid()
$$;

-- True when the caller (the role set with SET ROLE, as PostgREST does, or else the login role)
-- could read every sync row anyway: it bypasses RLS (service_role, a superuser) or owns the sync
-- tables (the postgres role of a direct connection such as SUPABASE_DB_URL). Reads the "role"
-- setting, which a SECURITY DEFINER function does not change, so definer RPCs can tell a
-- coordinator from the service; JWT claims are not trusted for this. Fails closed: anything else
-- is treated as a coordinator (scoped by auth.uid()).
create or replace function public.sync_caller_is_service()
returns boolean
language sql
stable
set search_path = ''
as $$
  select exists (
    select 1 from pg_catalog.pg_roles r
     where r.rolname = coalesce(nullif(nullif(current_setting('role', true), ''), 'none'),
                                session_user::text)
       and (r.rolbypassrls or r.rolsuper
            or r.oid = (select c.relowner from pg_catalog.pg_class c
                         where c.oid = 'public.sync_queue'::regclass))
  )
$$;

revoke all on function public.mentor_desired_visible(uuid), public.org_sync_enabled(uuid),
  public.coordinator_can_access_mentor(uuid, uuid), public.my_coordinated_mentor_ids(),
  public.my_coordinated_chapter_ids(), public.my_coordinated_organization_ids(),
  public.sync_caller_is_service()
  from public, anon, authenticated;
grant execute on function public.mentor_desired_visible(uuid), public.org_sync_enabled(uuid),
  public.coordinator_can_access_mentor(uuid, uuid), public.sync_caller_is_service()
  to service_role;
-- Policy helpers: they only ever answer about auth.uid() itself.
grant execute on function public.my_coordinated_mentor_ids(), public.my_coordinated_chapter_ids(),
  public.my_coordinated_organization_ids(), public.sync_caller_is_service()
  to authenticated, service_role;
