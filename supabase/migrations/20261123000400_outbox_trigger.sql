-- The transactional outbox: triggers on peer_mentors (status) and certifications write a
-- sync_queue row in the same transaction as the change.
--
-- Rules: paused -> remove; expired_cert -> remove; back to active with a certification whose
-- expires_at > now() -> restore; back to active without one -> no job, audit row
-- 'no_valid_certification' + RAISE WARNING; same status -> nothing; organisation without
-- dynamics_sync_enabled -> nothing. Certification insert/update/delete of an active mentor ->
-- restore if a valid certification remains, else remove ('certification_change').
-- A missing mapping row still enqueues: the processor dead-letters the job with a clear alert so
-- the operator adds the mapping.
--
-- triggered_by_event defaults to 'status_change' / 'certification_change'; a caller may set the
-- transaction-local setting hlf.sync_event (e.g. set_config('hlf.sync_event','expiry_check',true)).
--
-- The trigger must never make the app's change fail: the sync part runs in an exception block
-- that turns any error into a RAISE WARNING plus, when possible, a 'trigger_error' audit row.

-- Coalescing enqueue: at most one pending row per mentor; a newer intent updates operation,
-- triggered_by_event and next_attempt_at of that row. Returns the job id.
create or replace function public.sync_upsert_pending(p_mentor_id uuid, p_operation text, p_event text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into public.sync_queue as q (mentor_id, operation, triggered_by_event, next_attempt_at)
  values (p_mentor_id, p_operation, p_event, now())
  on conflict (mentor_id) where status = 'pending'
  do update set operation = excluded.operation,
                triggered_by_event = excluded.triggered_by_event,
                next_attempt_at = now(),
                updated_at = now()
  returning q.id into v_id;
  perform pg_notify('hlf_sync_queue', v_id::text);
  return v_id;
end
$$;

-- Writes an audit row; never fails the caller.
create or replace function public.sync_audit(
  p_mentor_id uuid, p_job_id bigint, p_event text, p_operation text default null,
  p_error_code text default null, p_attempt int default null
) returns void
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.sync_audit_log (mentor_id, job_id, event, operation, error_code, attempt)
  values (p_mentor_id, p_job_id, p_event, p_operation, p_error_code, p_attempt);
exception when others then
  raise warning 'hlf sync: could not write audit row % for mentor %: %', p_event, p_mentor_id, sqlerrm;
end
$$;

create or replace function public.sync_event_or(p_default text)
returns text
language sql
stable
set search_path = ''
as $$
  select coalesce(nullif(current_setting('hlf.sync_event', true), ''), p_default)
$$;

create or replace function public.sync_on_mentor_status()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_event text;
  v_valid boolean;
begin
  if tg_op = 'UPDATE' and new.status is not distinct from old.status then
    return null;
  end if;
  begin
    if not public.org_sync_enabled(new.organization_id) then
      return null;
    end if;
    v_event := public.sync_event_or('status_change');
    if new.status in ('paused', 'expired_cert') then
      perform public.sync_upsert_pending(new.id, 'remove', v_event);
    elsif new.status = 'active' and tg_op = 'UPDATE' then
      select exists (select 1 from public.certifications c
                      where c.mentor_id = new.id and c.expires_at > now())
        into v_valid;
      if v_valid then
        perform public.sync_upsert_pending(new.id, 'restore', v_event);
      else
        perform public.sync_audit(new.id, null, 'no_valid_certification', 'restore',
                                  'NO_VALID_CERTIFICATION');
        raise warning 'hlf sync: mentor % reinstated without a valid certification; not restored on the portal', new.id;
      end if;
    end if;
    -- An inserted active mentor has no certification yet: the certification trigger restores.
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
  v_status text;
  v_org uuid;
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
      select pm.status, pm.organization_id into v_status, v_org
        from public.peer_mentors pm where pm.id = v_mentor;
      -- Paused / expired mentors stay hidden whatever their certifications; a deleted mentor
      -- (cascade) has nothing to sync.
      if v_status = 'active' and public.org_sync_enabled(v_org) then
        select exists (select 1 from public.certifications c
                        where c.mentor_id = v_mentor and c.expires_at > now())
          into v_valid;
        perform public.sync_upsert_pending(
          v_mentor, case when v_valid then 'restore' else 'remove' end,
          public.sync_event_or('certification_change'));
      end if;
    exception when others then
      raise warning 'hlf sync: outbox trigger failed for mentor % (%): %', v_mentor, sqlstate, sqlerrm;
      perform public.sync_audit(v_mentor, null, 'trigger_error', null, sqlstate);
    end;
  end loop;
  return null;
end
$$;

drop trigger if exists hlf_sync_mentor_status on public.peer_mentors;
create trigger hlf_sync_mentor_status
  after insert or update of status on public.peer_mentors
  for each row execute function public.sync_on_mentor_status();

drop trigger if exists hlf_sync_certification_change on public.certifications;
create trigger hlf_sync_certification_change
  after insert or update or delete on public.certifications
  for each row execute function public.sync_on_certification_change();

revoke all on function public.sync_upsert_pending(uuid, text, text),
  public.sync_audit(uuid, bigint, text, text, text, int), public.sync_event_or(text),
  public.sync_on_mentor_status(), public.sync_on_certification_change()
  from public, anon, authenticated;
grant execute on function public.sync_upsert_pending(uuid, text, text),
  public.sync_audit(uuid, bigint, text, text, text, int), public.sync_event_or(text)
  to service_role;
