-- Performance of the outbox trigger and of the expiry checker (bench/README.md: trigger overhead
-- and expiry check). Same rules and contracts as 20261123000400 / 20261123000600; only how the
-- work is done changes.
--
-- Outbox:
--   * sync_upsert_pending notifies hlf_sync_queue only when it inserted a new pending row (a
--     coalesced row was announced when it was inserted; production's Database Webhook fires on
--     INSERT only as well). The coalescing update no longer rewrites indexed columns of a row that
--     is already due (next_attempt_at = least(old, now()), updated_at untouched: updated_at is
--     only read for done/dead rows), so it is a HOT update; and it is skipped altogether when the
--     pending row already carries the same operation and event and is due. A row waiting in
--     backoff (next_attempt_at > now()) is still made due now.
--   * The status trigger reads the organisation switch and the certification validity in one
--     query and computes the event inline (no nested security-definer calls besides the upsert).
-- Expiry checker:
--   * transitions are driven from the expired certifications (an active mentor with a
--     certification and none valid is exactly an active mentor with an expired certification and
--     none valid) instead of an anti-join over every active mentor;
--   * reminder candidates are only mentors with a certification expiring within the largest
--     threshold (of any organisation, at least the default 30) days; the rule itself is unchanged.
--   Both use the index certifications (expires_at, mentor_id).

create index if not exists certifications_expires_mentor_idx
  on public.certifications (expires_at, mentor_id);

create or replace function public.sync_upsert_pending(p_mentor_id uuid, p_operation text, p_event text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id bigint;
  v_inserted boolean;
begin
  insert into public.sync_queue as q (mentor_id, operation, triggered_by_event, next_attempt_at)
  values (p_mentor_id, p_operation, p_event, now())
  on conflict (mentor_id) where status = 'pending'
  do update set operation = excluded.operation,
                triggered_by_event = excluded.triggered_by_event,
                next_attempt_at = least(q.next_attempt_at, now())
   where (q.operation, q.triggered_by_event)
           is distinct from (excluded.operation, excluded.triggered_by_event)
      or q.next_attempt_at > now()
  returning q.id, q.xmax = 0 into v_id, v_inserted;
  if v_id is null then
    -- Nothing to change (same intent, already due); ON CONFLICT has locked the row.
    select q.id into v_id from public.sync_queue q
     where q.mentor_id = p_mentor_id and q.status = 'pending';
  elsif v_inserted then
    perform pg_notify('hlf_sync_queue', v_id::text);
  end if;
  return v_id;
end
$$;
create or replace function public.sync_on_mentor_status()
returns trigger language plpgsql security definer set search_path = '' as $$
declare
  v_enabled boolean;
  v_valid boolean;
  v_event text;
begin
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  begin
    select s.dynamics_sync_enabled,
           new.status = 'active' and tg_op = 'UPDATE'
             and exists (select 1 from public.certifications c
                          where c.mentor_id = new.id and c.expires_at > now())
      into v_enabled, v_valid
      from public.org_sync_settings s where s.organization_id = new.organization_id;
    if v_enabled is not true then
      return null;
    end if;
    v_event := coalesce(nullif(current_setting('hlf.sync_event', true), ''), 'status_change');
    if new.status in ('paused', 'expired_cert') then
      perform public.sync_upsert_pending(new.id, 'remove', v_event);
    elsif new.status = 'active' and tg_op = 'UPDATE' then
      if v_valid then
        perform public.sync_upsert_pending(new.id, 'restore', v_event);
      else
        perform public.sync_audit(new.id, null, 'no_valid_certification', 'restore',
                                  'NO_VALID_CERTIFICATION');
        raise warning 'hlf sync: mentor % reinstated without a valid certification; not restored on the portal', new.id;
      end if;
    end if;
  exception when others then
    raise warning 'hlf sync: outbox trigger failed for mentor % (%): %', new.id, sqlstate, sqlerrm;
    perform public.sync_audit(new.id, null, 'trigger_error', null, sqlstate);
  end;
  return null;
end
$$;

create or replace function public.sync_on_certification_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_mentor uuid;
  v_mentors uuid[];
  v_go boolean;
  v_valid boolean;
begin
  if tg_op = 'INSERT' then
    v_mentors := array[new.mentor_id];
  elsif tg_op = 'DELETE' then
    v_mentors := array[old.mentor_id];
  else
    if new.mentor_id is not distinct from old.mentor_id
       and new.expires_at is not distinct from old.expires_at then
      return null;
    end if;
    v_mentors := array[new.mentor_id];
    if new.mentor_id is distinct from old.mentor_id then
      v_mentors := v_mentors || old.mentor_id;
    end if;
  end if;
  foreach v_mentor in array v_mentors loop
    begin
      -- Paused / expired mentors stay hidden whatever their certifications; a deleted mentor
      -- (cascade) has nothing to sync. One query: status, organisation switch, validity.
      select pm.status = 'active' and coalesce(s.dynamics_sync_enabled, false),
             exists (select 1 from public.certifications c
                      where c.mentor_id = v_mentor and c.expires_at > now())
        into v_go, v_valid
        from public.peer_mentors pm
        left join public.org_sync_settings s on s.organization_id = pm.organization_id
       where pm.id = v_mentor;
      if v_go then
        perform public.sync_upsert_pending(
          v_mentor, case when v_valid then 'restore' else 'remove' end,
          coalesce(nullif(current_setting('hlf.sync_event', true), ''), 'certification_change'));
      end if;
    exception when others then
      raise warning 'hlf sync: outbox trigger failed for mentor % (%): %', v_mentor, sqlstate, sqlerrm;
      perform public.sync_audit(v_mentor, null, 'trigger_error', null, sqlstate);
    end;
  end loop;
  return null;
end
$$;

create or replace function public.run_expiry_check(p_batch_size int default 500)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_batch int := greatest(coalesce(p_batch_size, 500), 1);
  v_id uuid;
  v_found int := 0;
  v_transitioned int := 0;
  v_candidates int;
  v_reminders int;
  v_today date := (now() at time zone 'UTC')::date;
  v_until timestamptz;
begin
  -- 1. Transitions. An active mentor with a certification and none valid is exactly an active
  -- mentor with an expired certification and none valid, so the candidates come from the
  -- expired certifications (index range expires_at <= now()), not from every active mentor.
  -- SKIP LOCKED: a concurrent run handles the rows it holds.
  for v_id in
    select pm.id
      from public.peer_mentors pm
     where pm.id in (select c.mentor_id from public.certifications c where c.expires_at <= now())
       and pm.status = 'active'
       and not exists (select 1 from public.certifications c
                        where c.mentor_id = pm.id and c.expires_at > now())
     order by pm.id
     limit v_batch
     for update of pm skip locked
  loop
    v_found := v_found + 1;
    if public.expire_mentor_if_due(v_id) then
      v_transitioned := v_transitioned + 1;
    end if;
  end loop;

  -- 2. Reminders. A reminder is due only when the latest certification's expiry date is at most
  -- the largest threshold (of any organisation, or the default 30) days away, so only mentors
  -- with a certification in (now(), end of that day] are candidates; the rule itself (latest
  -- certification, nearest threshold t >= d not yet recorded) is evaluated as before.
  select ((v_today + greatest(30, coalesce(max(t), 30)) + 1)::timestamp at time zone 'UTC')
    into v_until
    from public.org_sync_settings s, unnest(s.reminder_threshold_days) t;

  with latest as (
    select pm.id as mentor_id,
           coalesce(s.reminder_threshold_days, '{30,14,7}'::int[]) as thresholds,
           (max(c.expires_at) at time zone 'UTC')::date as expiry_date
      from public.peer_mentors pm
      join public.certifications c on c.mentor_id = pm.id
      left join public.org_sync_settings s on s.organization_id = pm.organization_id
     where pm.status = 'active'
       and pm.id in (select w.mentor_id from public.certifications w
                      where w.expires_at > now() and w.expires_at < v_until)
     group by pm.id, s.reminder_threshold_days
    having max(c.expires_at) > now()
  ), due as (
    select l.mentor_id, l.expiry_date,
           (select min(t) from unnest(l.thresholds) t
             where t >= l.expiry_date - v_today) as threshold_day
      from latest l
  ), todo as (
    select d.mentor_id, d.threshold_day, d.expiry_date
      from due d
     where d.threshold_day is not null
       and not exists (select 1 from public.cert_expiry_reminders r
                        where r.mentor_id = d.mentor_id and r.threshold_day = d.threshold_day
                          and r.certification_expiry_date = d.expiry_date)
     order by d.mentor_id
     limit v_batch
  ), ins as (
    insert into public.cert_expiry_reminders (mentor_id, threshold_day, certification_expiry_date)
    select mentor_id, threshold_day, expiry_date from todo
    on conflict (mentor_id, threshold_day, certification_expiry_date) do nothing
    returning 1
  )
  select (select count(*) from todo), (select count(*) from ins) into v_candidates, v_reminders;

  return jsonb_build_object(
    'transitioned', v_transitioned,
    'reminders', v_reminders,
    'more', v_found >= v_batch or v_candidates >= v_batch);
end
$$;

revoke all on function public.sync_upsert_pending(uuid, text, text), public.sync_on_mentor_status(),
  public.sync_on_certification_change(), public.run_expiry_check(int)
  from public, anon, authenticated;
grant execute on function public.sync_upsert_pending(uuid, text, text), public.run_expiry_check(int)
  to service_role;
