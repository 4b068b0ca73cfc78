-- Sync lag: mapped mentors of sync-enabled organisations whose last synced visibility differs
-- from the desired one (never synced counts as differing), and since when. Read-only; used by
-- the reconcile action's lag report (per page of mentors) and by operators.
--
-- `since` is the best known start of the divergence: the mentor's oldest unfinished job (the
-- outbox row written with the change; coalescing keeps its created_at), else the open failure,
-- else the newest dead letter not yet redriven, else last_synced_at (an upper bound: the portal
-- was last set then). Null when none of these exists (never synced, nothing queued).
create or replace function public.sync_lag(p_mentor_ids uuid[] default null)
returns table (
  mentor_id uuid,
  desired_visible boolean,
  last_synced_visible boolean,
  since timestamptz,
  lag_seconds bigint
)
language sql
stable
security definer
set search_path = ''
as $$
  with lagging as (
    select m.mentor_id, public.mentor_desired_visible(m.mentor_id) as desired,
           m.last_synced_visible, m.last_synced_at
      from public.mentor_dynamics_contacts m
      join public.peer_mentors pm on pm.id = m.mentor_id
      join public.org_sync_settings s
        on s.organization_id = pm.organization_id and s.dynamics_sync_enabled
     where p_mentor_ids is null or m.mentor_id = any (p_mentor_ids)
  ), since as (
    select l.*,
           coalesce(
             (select min(q.created_at) from public.sync_queue q
               where q.mentor_id = l.mentor_id and q.status in ('pending', 'processing')),
             (select min(f.created_at) from public.dynamics_sync_failures f
               where f.mentor_id = l.mentor_id and f.resolved_at is null),
             (select max(d.created_at) from public.dead_letter_queue d
               where d.mentor_id = l.mentor_id and d.redriven_at is null),
             l.last_synced_at) as since
      from lagging l
     where l.desired is distinct from l.last_synced_visible
  )
  select s.mentor_id, s.desired, s.last_synced_visible, s.since,
         case when s.since is not null
              then greatest(floor(extract(epoch from (now() - s.since))), 0)::bigint end
    from since s
   order by s.since nulls last, s.mentor_id
$$;

revoke all on function public.sync_lag(uuid[]) from public, anon, authenticated;
grant execute on function public.sync_lag(uuid[]) to service_role;
