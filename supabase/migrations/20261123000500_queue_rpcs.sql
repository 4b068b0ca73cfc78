-- Queue RPCs for the processor (the Edge Function, the operator CLI) - service_role only.
-- Each one is a single statement/transaction: no transaction stays open across a Dynamics call.
--
--   sync_claim(limit, lease, mentor?)  -> jobs + decision facts; status processing, attempts+1
--   sync_complete(job, attempt, outcome, ...) -> applies the decision (fenced by attempts)
--   sync_enqueue(mentor, event)         -> coalesced pending job id
--   sync_redrive(dead_letter_id)        -> coalesced pending job id
--   sync_record_alert / sync_acknowledge_alerts
--   sync_reconcile_page(after, limit)   -> mapped mentors of sync-enabled orgs, keyset paged
--   sync_prune(done_days, audit_days)   -> retention

-- Claims due jobs: pending jobs with next_attempt_at <= now() of mentors that have no processing
-- job, plus processing jobs whose lease (locked_until) has expired (a crashed worker). One
-- candidate per mentor at most, so a mentor's jobs never run concurrently (also enforced by the
-- unique index sync_queue_one_processing_per_mentor). The returned attempts is the fencing token
-- for sync_complete.
create or replace function public.sync_claim(
  p_limit int,
  p_lease_seconds int,
  p_mentor_id uuid default null
) returns table (
  job_id bigint,
  mentor_id uuid,
  operation text,
  triggered_by_event text,
  attempts int,
  dynamics_contact_id uuid,
  mentor_status text,
  latest_cert_expires_at timestamptz,
  sync_enabled boolean,
  last_synced_visible boolean
)
language plpgsql
volatile
security definer
set search_path = ''
as $$
begin
  if p_limit is null or p_limit < 1 then
    raise exception 'sync_claim: p_limit must be >= 1' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds < 1 then
    raise exception 'sync_claim: p_lease_seconds must be >= 1' using errcode = '22023';
  end if;
  return query
  with candidates as (
    select q.id
      from public.sync_queue q
     where q.status in ('pending', 'processing')
       and (p_mentor_id is null or q.mentor_id = p_mentor_id)
       and ((q.status = 'processing' and q.locked_until < now())
         or (q.status = 'pending' and q.next_attempt_at <= now()
             and not exists (select 1 from public.sync_queue o
                              where o.mentor_id = q.mentor_id and o.status = 'processing')))
     order by q.next_attempt_at, q.id
     limit p_limit
     for update of q skip locked
  ), claimed as (
    update public.sync_queue q
       set status = 'processing',
           locked_until = now() + make_interval(secs => p_lease_seconds),
           attempts = q.attempts + 1,
           updated_at = now()
      from candidates c
     where q.id = c.id
    returning q.id, q.mentor_id, q.operation, q.triggered_by_event, q.attempts, q.next_attempt_at
  )
  select c.id, c.mentor_id, c.operation, c.triggered_by_event, c.attempts,
         m.dynamics_contact_id, pm.status,
         (select max(ce.expires_at) from public.certifications ce where ce.mentor_id = c.mentor_id),
         coalesce(s.dynamics_sync_enabled, false),
         m.last_synced_visible
    from claimed c
    join public.peer_mentors pm on pm.id = c.mentor_id
    left join public.mentor_dynamics_contacts m on m.mentor_id = c.mentor_id
    left join public.org_sync_settings s on s.organization_id = pm.organization_id
   order by c.next_attempt_at, c.id;
end
$$;

-- Enqueues (or coalesces into the pending job) a sync of the mentor's CURRENT desired visibility:
-- restore if visible, else remove. Used by force sync and reconciliation.
create or replace function public.sync_enqueue(p_mentor_id uuid, p_event text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not exists (select 1 from public.peer_mentors where id = p_mentor_id) then
    raise exception 'mentor % not found', p_mentor_id using errcode = 'P0002';
  end if;
  return public.sync_upsert_pending(
    p_mentor_id,
    case when public.mentor_desired_visible(p_mentor_id) then 'restore' else 'remove' end,
    p_event);
end
$$;

-- Records an alert. auth_failure (globally) and sync_pending (per mentor) are deduplicated while
-- an unacknowledged one exists: then nothing is inserted and NULL is returned (so the caller does
-- not post it to ALERT_WEBHOOK_URL again). Otherwise returns the new alert id.
create or replace function public.sync_record_alert(p_kind text, p_mentor_id uuid, p_message text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into public.sync_alerts (kind, mentor_id, message)
  values (p_kind, p_mentor_id, coalesce(p_message, p_kind))
  on conflict do nothing
  returning id into v_id;
  return v_id;
end
$$;

-- Acknowledges every unacknowledged alert of a kind (all kinds when p_kind is null); returns
-- how many.
create or replace function public.sync_acknowledge_alerts(p_kind text)
returns int
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_n int;
begin
  update public.sync_alerts set acknowledged_at = now()
   where acknowledged_at is null and (p_kind is null or kind = p_kind);
  get diagnostics v_n = row_count;
  return v_n;
end
$$;

-- Opens (or updates the open) failure row of a mentor; returns its id.
create or replace function public.sync_open_failure(
  p_mentor_id uuid, p_job_id bigint, p_error_code text, p_message text
) returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_id bigint;
begin
  insert into public.dynamics_sync_failures as f (mentor_id, job_id, error_code, message)
  values (p_mentor_id, p_job_id, p_error_code, p_message)
  on conflict (mentor_id) where resolved_at is null
  do update set job_id = excluded.job_id, error_code = excluded.error_code,
                message = excluded.message
  returning f.id into v_id;
  return v_id;
end
$$;

-- Applies the processor's decision for a claimed job, atomically. Fenced: only applies while the
-- job is 'processing' with attempts = p_attempt (else {"applied":false}: a stale worker whose
-- lease was taken over). p_audit: per-attempt objects
--   {"attempt":1,"httpStatus":503,"errorCode":"SERVER_ERROR","durationMs":12,"event":"dynamics_attempt"}
-- inserted into sync_audit_log, plus one audit row for the decision.
-- Outcomes:
--   synced       job done; mapping last_synced_visible/at; open failures resolved; the mentor's
--                open sync_pending alerts acknowledged. p_visible required.
--   retry        job pending at p_retry_at (default now() + 1 min); failure opened/updated;
--                sync_pending alert (deduplicated).
--   dead_letter  job dead; dead_letter_queue row; failure opened/updated; dead_letter alert.
--   auth_failure job pending again WITHOUT consuming the attempt (attempts - 1), next attempt at
--                coalesce(p_retry_at, now() + 5 min); auth_failure alert (deduplicated).
--   skipped      job done (e.g. org sync disabled at processing time).
-- When the job goes back to pending while a newer pending job of the same mentor exists, the
-- two are merged: the newer job keeps the intent, gets the later next_attempt_at and the higher
-- attempts; this one is marked done ('superseded').
-- Returns {"applied":true,"job_id","status","outcome","alert_id","failure_id","dead_letter_id",
--          "merged_into"} (ids null when not created; alert_id null when deduplicated).
create or replace function public.sync_complete(
  p_job_id bigint,
  p_attempt int,
  p_outcome text,
  p_visible boolean default null,
  p_retry_at timestamptz default null,
  p_error_code text default null,
  p_message text default null,
  p_audit jsonb default '[]'
) returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_job public.sync_queue;
  v_entry jsonb;
  v_status text;
  v_alert bigint;
  v_failure bigint;
  v_dead bigint;
  v_merged bigint;
  v_next timestamptz;
  v_attempts int;
  v_error text;
begin
  if p_outcome is null or p_outcome not in ('synced', 'retry', 'dead_letter', 'auth_failure', 'skipped') then
    raise exception 'sync_complete: unknown outcome %', p_outcome using errcode = '22023';
  end if;
  if p_outcome = 'synced' and p_visible is null then
    raise exception 'sync_complete: outcome synced needs p_visible' using errcode = '22023';
  end if;
  if p_audit is not null and jsonb_typeof(p_audit) <> 'array' then
    raise exception 'sync_complete: p_audit must be a JSON array' using errcode = '22023';
  end if;

  select * into v_job from public.sync_queue where id = p_job_id for update;
  if not found then
    return jsonb_build_object('applied', false, 'reason', 'not_found', 'job_id', p_job_id);
  end if;
  if v_job.status <> 'processing' or v_job.attempts is distinct from p_attempt then
    return jsonb_build_object('applied', false, 'reason', 'stale', 'job_id', p_job_id,
                              'status', v_job.status, 'attempts', v_job.attempts);
  end if;

  for v_entry in select value from jsonb_array_elements(coalesce(p_audit, '[]'::jsonb)) loop
    insert into public.sync_audit_log
      (mentor_id, job_id, event, operation, http_status, error_code, attempt, duration_ms)
    values (v_job.mentor_id, v_job.id,
            coalesce(v_entry ->> 'event', 'dynamics_attempt'),
            coalesce(v_entry ->> 'operation', v_job.operation),
            (v_entry ->> 'httpStatus')::int,
            v_entry ->> 'errorCode',
            (v_entry ->> 'attempt')::int,
            (v_entry ->> 'durationMs')::int);
  end loop;

  v_error := nullif(concat_ws(': ', p_error_code, p_message), '');

  if p_outcome in ('synced', 'skipped') then
    v_status := 'done';
    update public.sync_queue
       set status = 'done', locked_until = null, updated_at = now(),
           last_error = case when p_outcome = 'skipped' then v_error else null end
     where id = v_job.id;
    if p_outcome = 'synced' then
      update public.mentor_dynamics_contacts
         set last_synced_visible = p_visible, last_synced_at = now(), updated_at = now()
       where mentor_id = v_job.mentor_id;
      update public.dynamics_sync_failures set resolved_at = now()
       where mentor_id = v_job.mentor_id and resolved_at is null;
      update public.sync_alerts set acknowledged_at = now()
       where mentor_id = v_job.mentor_id and kind = 'sync_pending' and acknowledged_at is null;
    end if;

  elsif p_outcome = 'dead_letter' then
    v_status := 'dead';
    update public.sync_queue
       set status = 'dead', locked_until = null, last_error = v_error, updated_at = now()
     where id = v_job.id;
    insert into public.dead_letter_queue (job_id, mentor_id, operation, reason, error_code, payload)
    values (v_job.id, v_job.mentor_id, v_job.operation,
            coalesce(p_message, p_error_code, 'dead-lettered'), p_error_code,
            jsonb_build_object('job_id', v_job.id, 'mentor_id', v_job.mentor_id,
                               'operation', v_job.operation,
                               'triggered_by_event', v_job.triggered_by_event,
                               'attempts', v_job.attempts, 'created_at', v_job.created_at,
                               'error_code', p_error_code, 'message', p_message))
    returning id into v_dead;
    v_failure := public.sync_open_failure(v_job.mentor_id, v_job.id, p_error_code, p_message);
    insert into public.sync_alerts (kind, mentor_id, message)
    values ('dead_letter', v_job.mentor_id,
            format('sync job %s for mentor %s dead-lettered: %s', v_job.id, v_job.mentor_id,
                   coalesce(v_error, 'no reason given')))
    returning id into v_alert;

  else -- retry, auth_failure: back to pending
    v_status := 'pending';
    if p_outcome = 'retry' then
      v_next := coalesce(p_retry_at, now() + interval '1 minute');
      v_attempts := v_job.attempts;
    else
      v_next := coalesce(p_retry_at, now() + interval '5 minutes');
      v_attempts := greatest(v_job.attempts - 1, 0);
    end if;
    update public.sync_queue
       set next_attempt_at = greatest(next_attempt_at, v_next),
           attempts = greatest(attempts, v_attempts),
           updated_at = now()
     where mentor_id = v_job.mentor_id and status = 'pending'
    returning id into v_merged;
    if v_merged is not null then
      update public.sync_queue
         set status = 'done', locked_until = null, updated_at = now(),
             last_error = concat_ws('; ', v_error, format('superseded by job %s', v_merged))
       where id = v_job.id;
      perform public.sync_audit(v_job.mentor_id, v_job.id, 'superseded', v_job.operation,
                                p_error_code, v_job.attempts);
    else
      update public.sync_queue
         set status = 'pending', locked_until = null, next_attempt_at = v_next,
             attempts = v_attempts, last_error = v_error, updated_at = now()
       where id = v_job.id;
    end if;
    if p_outcome = 'retry' then
      v_failure := public.sync_open_failure(v_job.mentor_id, v_job.id, p_error_code, p_message);
      v_alert := public.sync_record_alert(
        'sync_pending', v_job.mentor_id,
        format('Dynamics sync pending — mentor may still be visible on the portal (mentor %s, '
               'retrying at %s): %s', v_job.mentor_id, v_next, coalesce(v_error, 'no reason given')));
    else
      v_alert := public.sync_record_alert(
        'auth_failure', v_job.mentor_id,
        format('Dynamics authentication failed (%s); sync paused until credentials work',
               coalesce(v_error, 'no reason given')));
    end if;
  end if;

  insert into public.sync_audit_log (mentor_id, job_id, event, operation, error_code, attempt)
  values (v_job.mentor_id, v_job.id,
          case p_outcome when 'synced' then 'synced'
                         when 'skipped' then 'skipped'
                         when 'retry' then 'retry_scheduled'
                         when 'dead_letter' then 'dead_lettered'
                         else 'auth_failure' end,
          v_job.operation, p_error_code, v_job.attempts);

  return jsonb_build_object(
    'applied', true, 'job_id', v_job.id, 'status', v_status, 'outcome', p_outcome,
    'alert_id', v_alert, 'failure_id', v_failure, 'dead_letter_id', v_dead,
    'merged_into', v_merged);
end
$$;

-- Requeues a dead letter: sets redriven_at and enqueues (coalesced) a job for the mentor's current
-- desired visibility, with the original job's triggered_by_event. Errors when not found
-- (P0002) or already redriven (55000).
create or replace function public.sync_redrive(p_dead_letter_id bigint)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_dl public.dead_letter_queue;
  v_event text;
  v_job bigint;
begin
  select * into v_dl from public.dead_letter_queue where id = p_dead_letter_id for update;
  if not found then
    raise exception 'dead letter % not found', p_dead_letter_id using errcode = 'P0002';
  end if;
  if v_dl.redriven_at is not null then
    raise exception 'dead letter % was already redriven at %', p_dead_letter_id, v_dl.redriven_at
      using errcode = '55000';
  end if;
  update public.dead_letter_queue set redriven_at = now() where id = p_dead_letter_id;
  v_event := coalesce(v_dl.payload ->> 'triggered_by_event',
                      (select q.triggered_by_event from public.sync_queue q where q.id = v_dl.job_id),
                      'reconciliation');
  v_job := public.sync_enqueue(v_dl.mentor_id, v_event);
  perform public.sync_audit(v_dl.mentor_id, v_job, 'redriven', v_dl.operation, v_dl.error_code);
  return v_job;
end
$$;

-- Keyset page over mapped mentors of sync-enabled organisations, ordered by mentor_id, for the
-- reconcile action (compares desired_visible with what Dynamics shows).
create or replace function public.sync_reconcile_page(p_after uuid, p_limit int)
returns table (
  mentor_id uuid,
  dynamics_contact_id uuid,
  desired_visible boolean,
  last_synced_visible boolean,
  last_synced_at timestamptz
)
language sql
stable
security definer
set search_path = ''
as $$
  select m.mentor_id, m.dynamics_contact_id, public.mentor_desired_visible(m.mentor_id),
         m.last_synced_visible, m.last_synced_at
    from public.mentor_dynamics_contacts m
    join public.peer_mentors pm on pm.id = m.mentor_id
    join public.org_sync_settings s
      on s.organization_id = pm.organization_id and s.dynamics_sync_enabled
   where p_after is null or m.mentor_id > p_after
   order by m.mentor_id
   limit greatest(coalesce(p_limit, 100), 1)
$$;

-- Retention. The outbox is update-heavy and append-only: without pruning, finished jobs and audit
-- rows grow without bound, the heap and its non-partial indexes bloat and vacuum work grows with
-- them. This deletes: done jobs older than p_done_days; dead jobs whose dead letter was redriven
-- and that are older than p_done_days; audit rows, resolved failures, acknowledged alerts,
-- redriven dead letters and reminders of certifications that expired, all older than p_audit_days.
-- Unfinished work (pending/processing jobs, open failures, unacknowledged alerts, dead letters
-- not yet redriven) is never deleted. Autovacuum then reuses the space. Run nightly.
create or replace function public.sync_prune(p_done_days int default 30, p_audit_days int default 180)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_done_cut timestamptz := now() - make_interval(days => greatest(coalesce(p_done_days, 30), 0));
  v_audit_cut timestamptz := now() - make_interval(days => greatest(coalesce(p_audit_days, 180), 0));
  v_jobs int;
  v_dead_jobs int;
  v_audit int;
  v_failures int;
  v_alerts int;
  v_dead_letters int;
  v_reminders int;
begin
  delete from public.sync_queue where status = 'done' and updated_at < v_done_cut;
  get diagnostics v_jobs = row_count;
  delete from public.sync_queue q
   where q.status = 'dead' and q.updated_at < v_done_cut
     and not exists (select 1 from public.dead_letter_queue d
                      where d.job_id = q.id and d.redriven_at is null);
  get diagnostics v_dead_jobs = row_count;
  delete from public.sync_audit_log where created_at < v_audit_cut;
  get diagnostics v_audit = row_count;
  delete from public.dynamics_sync_failures where resolved_at < v_audit_cut;
  get diagnostics v_failures = row_count;
  delete from public.sync_alerts where acknowledged_at < v_audit_cut;
  get diagnostics v_alerts = row_count;
  delete from public.dead_letter_queue where redriven_at < v_audit_cut;
  get diagnostics v_dead_letters = row_count;
  delete from public.cert_expiry_reminders where certification_expiry_date < v_audit_cut::date;
  get diagnostics v_reminders = row_count;
  return jsonb_build_object('jobs', v_jobs + v_dead_jobs, 'audit', v_audit,
                            'failures', v_failures, 'alerts', v_alerts,
                            'dead_letters', v_dead_letters, 'reminders', v_reminders);
end
$$;

revoke all on function public.sync_claim(int, int, uuid), public.sync_enqueue(uuid, text),
  public.sync_record_alert(text, uuid, text), public.sync_acknowledge_alerts(text),
  public.sync_open_failure(uuid, bigint, text, text),
  public.sync_complete(bigint, int, text, boolean, timestamptz, text, text, jsonb),
  public.sync_redrive(bigint), public.sync_reconcile_page(uuid, int), public.sync_prune(int, int)
  from public, anon, authenticated;
grant execute on function public.sync_claim(int, int, uuid), public.sync_enqueue(uuid, text),
  public.sync_record_alert(text, uuid, text), public.sync_acknowledge_alerts(text),
  public.sync_open_failure(uuid, bigint, text, text),
  public.sync_complete(bigint, int, text, boolean, timestamptz, text, text, jsonb),
  public.sync_redrive(bigint), public.sync_reconcile_page(uuid, int), public.sync_prune(int, int)
  to service_role;
