-- The login's lookup by email also finds users without a profile (made by GoTrue itself, OAuth,
-- the dashboard): the service must know whether GoTrue found a user, to give an unknown email
-- the same time as a wrong password (it hashes once when GoTrue did not). The profile columns
-- are null for such users. Same signature and lookup as GoTrue's password grant.
create or replace function atomic_signup.find_profile_by_email(p_email text)
returns table (user_id uuid, name text, role text, onboarding_completed boolean)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return query
  select u.id, p.name, p.role, p.onboarding_completed
  from auth.users u
  left join public.profiles p on p.id = u.id
  where u.instance_id = '00000000-0000-0000-0000-000000000000'
    and lower(u.email) = lower(p_email) and u.aud = 'authenticated' and u.is_sso_user = false
  limit 1;
end
$$;
