-- The login's profile lookups, rewritten in PL/pgSQL with the same signatures and results.
-- SQL-language functions that are SECURITY DEFINER are neither inlined nor plan-cached: Postgres
-- parsed and planned their query again on every login. PL/pgSQL keeps the plan for the life of
-- the connection (the benchmark measured the lookups' planning in Postgres' CPU per login).
create or replace function atomic_signup.find_profile(p_user_id uuid)
returns table (name text, role text, onboarding_completed boolean)
language plpgsql stable security definer set search_path = '' as $$
begin
  return query
  select p.name, p.role, p.onboarding_completed from public.profiles p where p.id = p_user_id;
end
$$;

-- Same lookup as GoTrue's password grant: nil instance id, lower(email), aud, not SSO.
create or replace function atomic_signup.find_profile_by_email(p_email text)
returns table (user_id uuid, name text, role text, onboarding_completed boolean)
language plpgsql stable security definer set search_path = '' as $$
begin
  return query
  select u.id, p.name, p.role, p.onboarding_completed
  from auth.users u
  join public.profiles p on p.id = u.id
  where u.instance_id = '00000000-0000-0000-0000-000000000000'
    and lower(u.email) = lower(p_email) and u.aud = 'authenticated' and u.is_sso_user = false
  limit 1;
end
$$;
