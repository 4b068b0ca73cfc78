-- pgbench: one coordinator status change (active <-> paused) of a random mentor.
-- Run with -D mentors=N on a database seeded by bench/bench.ts (public.bench_ids).
\set n random(1, :mentors)
update public.peer_mentors
   set status = case status when 'active' then 'paused' else 'active' end, updated_at = now()
 where id = (select id from public.bench_ids where n = :n);
