-- sync_complete_many: several sync_complete calls in one round trip (the queue processor completes
-- the jobs its workers finished meanwhile in one statement). Each element is applied by
-- public.sync_complete itself - same fencing (processing with attempts = attempt), same outcomes,
-- audit rows and alerts - in job id order (a stable lock order between concurrent callers). The
-- call is one transaction: an element that raises rolls the whole call back (the caller then
-- completes the elements one by one).
create or replace function public.sync_complete_many(p_items jsonb)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_item jsonb;
  v_results jsonb := '[]'::jsonb;
begin
  if p_items is null or jsonb_typeof(p_items) <> 'array' then
    raise exception 'sync_complete_many: p_items must be a JSON array' using errcode = '22023';
  end if;
  for v_item in
    select e from jsonb_array_elements(p_items) e order by (e ->> 'job_id')::bigint
  loop
    if jsonb_typeof(v_item) <> 'object' or v_item ->> 'job_id' is null
       or v_item ->> 'attempt' is null or v_item ->> 'outcome' is null then
      raise exception 'sync_complete_many: every item needs job_id, attempt and outcome'
        using errcode = '22023';
    end if;
    v_results := v_results || jsonb_build_array(
      jsonb_build_object('job_id', (v_item ->> 'job_id')::bigint) ||
      public.sync_complete(
        (v_item ->> 'job_id')::bigint,
        (v_item ->> 'attempt')::int,
        v_item ->> 'outcome',
        (v_item ->> 'visible')::boolean,
        (v_item ->> 'retry_at')::timestamptz,
        v_item ->> 'error_code',
        v_item ->> 'message',
        coalesce(v_item -> 'audit', '[]'::jsonb)
      ));
  end loop;
  return v_results;
end
$$;

comment on function public.sync_complete_many(jsonb) is
  'Applies [{job_id, attempt, outcome, visible, retry_at, error_code, message, audit}] through '
  'sync_complete, in job id order, in one transaction; returns one sync_complete result per item '
  '(plus job_id), in job id order.';

revoke all on function public.sync_complete_many(jsonb) from public, anon, authenticated;
grant execute on function public.sync_complete_many(jsonb) to service_role;
