-- App tables the sync reads. In the real HLF app they exist already; created here only when absent
-- (local development, tests). RLS is enabled on each in this same migration; the coordinator read
-- policies live in 20261123000700_rls_policies.sql.

create table if not exists public.organizations (
  id uuid primary key default gen_random_uuid(),
  code text not null unique,
  name text
);
alter table public.organizations enable row level security;

create table if not exists public.chapters (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  name text not null
);
alter table public.chapters enable row level security;

create table if not exists public.peer_mentors (
  id uuid primary key default gen_random_uuid(),
  organization_id uuid not null references public.organizations (id) on delete cascade,
  full_name text not null,
  status text not null default 'active' check (status in ('active', 'paused', 'expired_cert')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table public.peer_mentors enable row level security;

create table if not exists public.peer_mentor_chapters (
  mentor_id uuid not null references public.peer_mentors (id) on delete cascade,
  chapter_id uuid not null references public.chapters (id) on delete cascade,
  primary key (mentor_id, chapter_id)
);
alter table public.peer_mentor_chapters enable row level security;

create table if not exists public.certifications (
  id uuid primary key default gen_random_uuid(),
  mentor_id uuid not null references public.peer_mentors (id) on delete cascade,
  expires_at timestamptz not null,
  created_at timestamptz not null default now()
);
alter table public.certifications enable row level security;

create table if not exists public.coordinator_chapters (
  user_id uuid not null,
  chapter_id uuid not null references public.chapters (id) on delete cascade,
  primary key (user_id, chapter_id)
);
alter table public.coordinator_chapters enable row level security;

-- One row per organisation; an organisation without a row has sync disabled and the default
-- reminder thresholds.
create table if not exists public.org_sync_settings (
  organization_id uuid primary key references public.organizations (id) on delete cascade,
  dynamics_sync_enabled boolean not null default false,
  reminder_threshold_days int[] not null default '{30,14,7}',
  updated_at timestamptz not null default now()
);
alter table public.org_sync_settings enable row level security;

create index if not exists peer_mentors_organization_idx on public.peer_mentors (organization_id);
create index if not exists peer_mentors_active_idx on public.peer_mentors (id) where status = 'active';
create index if not exists peer_mentor_chapters_chapter_idx on public.peer_mentor_chapters (chapter_id);
create index if not exists certifications_mentor_expires_idx
  on public.certifications (mentor_id, expires_at desc);
create index if not exists coordinator_chapters_chapter_idx on public.coordinator_chapters (chapter_id);
