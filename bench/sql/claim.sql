-- pgbench: one claim of a processor batch (16 jobs, 180 s lease), rolled back so every
-- transaction sees the same queue.
begin;
select count(*) from public.sync_claim(16, 180, null);
rollback;
