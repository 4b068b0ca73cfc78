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

-- Coalescing enqueue: at most one pending row per mentor; a newer intent updates operation and
-- triggered_by_event of that row and makes it due (next_attempt_at = least(old, now())). Returns
-- the job id. Kept cheap because it runs inside the app's transaction (bench/README.md, trigger
-- overhead): NOTIFY hlf_sync_queue only when a row was inserted (a coalesced row was announced
-- when it was inserted; the production Database Webhook fires on INSERT only as well); the merge
-- rewrites no indexed column of a row that is already due (updated_at is only read for done/dead
-- rows), so it is a HOT update; the same intent on a due row changes nothing. The triggers read
-- the organisation switch and certification validity in one query each.
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
