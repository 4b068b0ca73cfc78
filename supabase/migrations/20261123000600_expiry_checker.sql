-- Nightly certification expiry checker. Callable by pg_cron directly (the fallback without the
-- Edge Function) and by the function's expiry_check action. Idempotent and safe to run twice or
-- concurrently:
--   * transitions go through expire_mentor_if_due(), which locks the mentor row and checks the
--     current status and certification first;
--   * reminders are inserted with ON CONFLICT DO NOTHING on the unique
--     (mentor_id, threshold_day, certification_expiry_date).
-- Paged: one call handles at most p_batch_size transitions and p_batch_size reminders and says
-- whether more remains, so one invocation stays inside Edge Function limits.

-- Moves an active mentor whose latest certification has expired to expired_cert. Returns true
-- when it changed the status. The outbox trigger then enqueues a 'remove' job with
-- triggered_by_event = 'expiry_check'.
create or replace function public.expire_mentor_if_due(p_mentor_id uuid)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_status text;
  v_prev_event text;
begin
  select pm.status into v_status from public.peer_mentors pm where pm.id = p_mentor_id for update;
  if v_status is distinct from 'active' then
    return false;
  end if;
  if not exists (select 1 from public.certifications c where c.mentor_id = p_mentor_id)
     or exists (select 1 from public.certifications c
                 where c.mentor_id = p_mentor_id and c.expires_at > now()) then
    return false;
  end if;
  v_prev_event := current_setting('hlf.sync_event', true);
  perform set_config('hlf.sync_event', 'expiry_check', true);
  update public.peer_mentors set status = 'expired_cert', updated_at = now() where id = p_mentor_id;
  perform set_config('hlf.sync_event', coalesce(v_prev_event, ''), true);
  perform public.sync_audit(p_mentor_id, null, 'auto_expired', 'remove', 'CERTIFICATION_EXPIRED');
  return true;
end
$$;

-- Reminder rule: for an active mentor whose latest certification expires in d days (d >= 0,
-- counted in UTC calendar days), the reminder is the nearest threshold t >= d of the
-- organisation (org_sync_settings.reminder_threshold_days, default {30,14,7}); it is inserted
-- once. Larger thresholds that were missed (the checker was down) are not sent afterwards, so a
-- late run never produces a burst of stale reminders.
-- Transitions start from expired certifications and reminder candidates from certifications
-- expiring within the largest threshold; both read this index (bench/README.md, expiry check).
create index if not exists certifications_expires_mentor_idx
  on public.certifications (expires_at, mentor_id);

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

revoke all on function public.expire_mentor_if_due(uuid), public.run_expiry_check(int)
  from public, anon, authenticated;
grant execute on function public.expire_mentor_if_due(uuid), public.run_expiry_check(int)
  to service_role;
