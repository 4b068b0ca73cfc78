-- Sync tables: mapping, transactional outbox (sync_queue), audit log, dead letters, failures,
-- alerts, expiry reminders. RLS enabled on each here; policies in 20261123000700_rls_policies.sql.
-- Coordinators never write these tables: only the service role and the security-definer RPCs do.

create table if not exists public.mentor_dynamics_contacts (
  mentor_id uuid primary key references public.peer_mentors (id) on delete cascade,
  dynamics_contact_id uuid not null unique,
  last_synced_visible boolean,
  last_synced_at timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.mentor_dynamics_contacts enable row level security;

-- The transactional outbox. Life cycle: pending -> processing (claimed, leased) -> done | dead,
-- or back to pending (retry, auth failure). Rows are written by the outbox trigger in the same
-- transaction as the status change.
--
-- Bloat: every job is updated 2-4 times and then never read again. Dead tuples from the updates
-- are reclaimed by autovacuum (tuned more eagerly below); finished rows are removed by
-- public.sync_prune(). The claim path only ever touches the partial indexes on unfinished rows
-- (status in pending/processing), so their size tracks the backlog, not the history.
create table if not exists public.sync_queue (
  id bigint generated always as identity primary key,
  mentor_id uuid not null references public.peer_mentors (id) on delete cascade,
  operation text not null check (operation in ('remove', 'restore')),
  status text not null default 'pending'
    check (status in ('pending', 'processing', 'done', 'dead')),
  triggered_by_event text not null check (triggered_by_event in (
    'status_change', 'certification_change', 'manual_coordinator_action', 'reconciliation',
    'expiry_check')),
  attempts int not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  locked_until timestamptz,
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.sync_queue enable row level security;
alter table public.sync_queue set (
  autovacuum_vacuum_scale_factor = 0.02,
  autovacuum_analyze_scale_factor = 0.02,
  fillfactor = 80
);

-- Coalescing: at most one pending job per mentor; a newer intent updates it.
create unique index if not exists sync_queue_one_pending_per_mentor
  on public.sync_queue (mentor_id) where status = 'pending';
-- A mentor's jobs never run concurrently: at most one processing job per mentor.
create unique index if not exists sync_queue_one_processing_per_mentor
  on public.sync_queue (mentor_id) where status = 'processing';
-- The claim scan: unfinished rows only.
create index if not exists sync_queue_due_idx
  on public.sync_queue (next_attempt_at, id) where status in ('pending', 'processing');
create index if not exists sync_queue_finished_idx
  on public.sync_queue (updated_at) where status in ('done', 'dead');

create table if not exists public.sync_audit_log (
  id bigint generated always as identity primary key,
  mentor_id uuid,
  job_id bigint,
  event text not null,
  operation text,
  http_status int,
  error_code text,
  attempt int,
  duration_ms int,
  created_at timestamptz not null default now()
);
alter table public.sync_audit_log enable row level security;
create index if not exists sync_audit_log_mentor_idx on public.sync_audit_log (mentor_id, created_at);
create index if not exists sync_audit_log_job_idx on public.sync_audit_log (job_id);
create index if not exists sync_audit_log_created_idx on public.sync_audit_log (created_at);

create table if not exists public.dead_letter_queue (
  id bigint generated always as identity primary key,
  job_id bigint not null,
  mentor_id uuid not null,
  operation text not null,
  reason text not null,
  error_code text,
  payload jsonb not null default '{}',
  created_at timestamptz not null default now(),
  redriven_at timestamptz
);
alter table public.dead_letter_queue enable row level security;
create index if not exists dead_letter_queue_open_idx
  on public.dead_letter_queue (created_at) where redriven_at is null;
create index if not exists dead_letter_queue_mentor_idx on public.dead_letter_queue (mentor_id);

-- Open while the portal may be wrong for a mentor; at most one open row per mentor.
create table if not exists public.dynamics_sync_failures (
  id bigint generated always as identity primary key,
  mentor_id uuid not null references public.peer_mentors (id) on delete cascade,
  job_id bigint,
  error_code text,
  message text,
  created_at timestamptz not null default now(),
  resolved_at timestamptz
);
alter table public.dynamics_sync_failures enable row level security;
create unique index if not exists dynamics_sync_failures_one_open_per_mentor
  on public.dynamics_sync_failures (mentor_id) where resolved_at is null;
create index if not exists dynamics_sync_failures_resolved_idx
  on public.dynamics_sync_failures (resolved_at) where resolved_at is not null;

create table if not exists public.sync_alerts (
  id bigint generated always as identity primary key,
  kind text not null check (kind in ('auth_failure', 'dead_letter', 'divergence', 'sync_pending')),
  mentor_id uuid,
  message text not null,
  created_at timestamptz not null default now(),
  acknowledged_at timestamptz
);
alter table public.sync_alerts enable row level security;
-- Deduplication: one unacknowledged auth_failure alert in total, and one unacknowledged
-- sync_pending alert per mentor. Inserts use ON CONFLICT DO NOTHING, which makes this race-free.
create unique index if not exists sync_alerts_open_dedup
  on public.sync_alerts (kind, (case when kind = 'auth_failure'
                                     then '00000000-0000-0000-0000-000000000000'::uuid
                                     else coalesce(mentor_id, '00000000-0000-0000-0000-000000000000'::uuid)
                                end))
  where acknowledged_at is null and kind in ('auth_failure', 'sync_pending');
create index if not exists sync_alerts_open_idx
  on public.sync_alerts (kind, created_at) where acknowledged_at is null;
create index if not exists sync_alerts_mentor_idx on public.sync_alerts (mentor_id);

create table if not exists public.cert_expiry_reminders (
  mentor_id uuid not null references public.peer_mentors (id) on delete cascade,
  threshold_day int not null,
  certification_expiry_date date not null,
  created_at timestamptz not null default now(),
  unique (mentor_id, threshold_day, certification_expiry_date)
);
alter table public.cert_expiry_reminders enable row level security;
create index if not exists cert_expiry_reminders_expiry_idx
  on public.cert_expiry_reminders (certification_expiry_date);

-- The API roles get Supabase's default grants on new tables; the sync tables are read-only for
-- coordinators (through RLS) and invisible to anon. TRUNCATE is not governed by RLS: revoke it.
revoke all on public.mentor_dynamics_contacts, public.sync_queue, public.sync_audit_log,
  public.dead_letter_queue, public.dynamics_sync_failures, public.sync_alerts,
  public.cert_expiry_reminders from anon, authenticated;
grant select on public.mentor_dynamics_contacts, public.sync_queue, public.sync_audit_log,
  public.dead_letter_queue, public.dynamics_sync_failures, public.sync_alerts,
  public.cert_expiry_reminders to authenticated;
grant all on public.mentor_dynamics_contacts, public.sync_queue, public.sync_audit_log,
  public.dead_letter_queue, public.dynamics_sync_failures, public.sync_alerts,
  public.cert_expiry_reminders to service_role;
