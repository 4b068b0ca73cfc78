-- Schedules (pg_cron), guarded: the migration succeeds where pg_cron is absent or cannot be
-- created in this database (pg_cron lives in one database per cluster, cron.database_name).
--   hlf-expiry-check-sql   nightly 02:40 UTC: the SQL fallback, run_expiry_check paged until
--                          done, then sync_prune. Works without the Edge Function.
-- Only when pg_net is present as well (hosted Supabase), reading the function URL and the
-- service key from Vault (secrets 'hlf_sync_function_url', 'hlf_sync_service_role_key'):
--   hlf-expiry-check-edge  nightly 02:10 UTC: POST {"action":"expiry_check"} (credential health,
--                          transitions, reminders, drain); the SQL run afterwards finds nothing left.
--   hlf-queue-nudge        every minute: POST {"action":"process_queue"} when due jobs exist.

do $$
begin
  if not exists (select 1 from pg_extension where extname = 'pg_cron') then
    if not exists (select 1 from pg_available_extensions where name = 'pg_cron') then
      raise notice 'pg_cron not available: schedules skipped (run public.run_expiry_check() yourself)';
      return;
    end if;
    begin
      create extension if not exists pg_cron;
    exception when others then
      raise notice 'pg_cron cannot be created in this database (%): schedules skipped', sqlerrm;
      return;
    end;
  end if;

  perform cron.schedule('hlf-expiry-check-sql', '40 2 * * *', $cmd$
    do $job$
    declare
      r jsonb;
      i int := 0;
    begin
      loop
        r := public.run_expiry_check(500);
        i := i + 1;
        exit when not (r ->> 'more')::boolean or i >= 200;
      end loop;
      perform public.sync_prune(30, 180);
    end
    $job$;
  $cmd$);

  if exists (select 1 from pg_extension where extname = 'pg_net')
     and to_regclass('vault.decrypted_secrets') is not null then
    perform cron.schedule('hlf-expiry-check-edge', '10 2 * * *', $cmd$
      select net.http_post(
        url := u.decrypted_secret,
        headers := jsonb_build_object('Content-Type', 'application/json',
                                      'Authorization', 'Bearer ' || k.decrypted_secret),
        body := '{"action":"expiry_check"}'::jsonb,
        timeout_milliseconds := 150000)
      from vault.decrypted_secrets u, vault.decrypted_secrets k
      where u.name = 'hlf_sync_function_url' and k.name = 'hlf_sync_service_role_key';
    $cmd$);
    perform cron.schedule('hlf-queue-nudge', '* * * * *', $cmd$
      select net.http_post(
        url := u.decrypted_secret,
        headers := jsonb_build_object('Content-Type', 'application/json',
                                      'Authorization', 'Bearer ' || k.decrypted_secret),
        body := '{"action":"process_queue","max_jobs":50}'::jsonb)
      from vault.decrypted_secrets u, vault.decrypted_secrets k
      where u.name = 'hlf_sync_function_url' and k.name = 'hlf_sync_service_role_key'
        and exists (select 1 from public.sync_queue q
                     where (q.status = 'pending' and q.next_attempt_at <= now())
                        or (q.status = 'processing' and q.locked_until < now()));
    $cmd$);
  else
    raise notice 'pg_net not present: only the SQL expiry fallback is scheduled';
  end if;
end
$$;
