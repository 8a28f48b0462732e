-- public.profiles: one row per auth user, written by atomic-signup in the same transaction as the
-- auth.users / auth.identities rows (see 20261124000002_signup_function.sql).
--
-- Applies on a Supabase database and on tests/fixtures/supabase_auth.sql. sqlx records applied
-- migrations in _sqlx_migrations, so a second `atomic-signup migrate` is a no-op.

-- Private schema for the service's own objects (signup function, later the outbox). It is not in
-- PostgREST's exposed schemas, and the API roles get no USAGE on it.
create schema if not exists atomic_signup;
revoke all on schema atomic_signup from public;

-- sqlx keeps its bookkeeping table in the first schema of the search_path, usually public, where
-- Supabase's default privileges would let anon/authenticated read and change it through the
-- REST API. Take those rights away.
do $$
begin
  if to_regclass('public._sqlx_migrations') is not null then
    execute 'revoke all on table public._sqlx_migrations from public, anon, authenticated';
  end if;
end
$$;

create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  name text not null check (char_length(name) between 1 and 100),
  role text not null,
  onboarding_completed boolean not null default false,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.profiles is 'Application profile of an auth user; created by atomic-signup together with the auth user.';
comment on column public.profiles.role is 'Chosen at signup from SIGNUP_ROLES; a user can never change it.';

-- Keep updated_at honest on every update.
create function atomic_signup.touch_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end
$$;
revoke all on function atomic_signup.touch_updated_at() from public;

create trigger profiles_touch_updated_at
  before update on public.profiles
  for each row execute function atomic_signup.touch_updated_at();

-- Row level security: a signed-in user reads and updates only their own row.
alter table public.profiles enable row level security;

create policy "profiles_select_own" on public.profiles
  for select to authenticated
  using ((select auth.uid()) = id);

create policy "profiles_update_own" on public.profiles
  for update to authenticated
  using ((select auth.uid()) = id)
  with check ((select auth.uid()) = id);

-- Column-level grants: on Supabase the API roles get ALL on new public tables by default.
-- anon gets nothing; authenticated may read its row and change only name and onboarding_completed
-- (never role, id or the timestamps). Inserts come only from this service.
revoke all on table public.profiles from public, anon, authenticated;
grant select on table public.profiles to authenticated;
grant update (name, onboarding_completed) on table public.profiles to authenticated;
