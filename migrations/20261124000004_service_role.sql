-- Least privilege: the group role `atomic_signup_service` holds exactly what the service needs.
-- Grant it to the LOGIN role the service connects with (README, "Least privilege"):
--
--   create role atomic_signup_app login password '…';
--   grant atomic_signup_service to atomic_signup_app;
--
-- It can: sign users up (EXECUTE on the SECURITY DEFINER create_user), read a profile by user id
-- or email (find_profile, find_profile_by_email: name, role, onboarding flag only), claim outbox rows (claim_confirmation, which also reads the user's email) and
-- settle them (SELECT/UPDATE on the outbox). It cannot read auth.users (so no password hash),
-- write the auth tables directly, or delete anything.

do $$
begin
  create role atomic_signup_service nologin;
exception when duplicate_object or unique_violation then null;  -- another database made it
end
$$;

grant usage on schema atomic_signup to atomic_signup_service;
grant execute on function atomic_signup.create_user(uuid, text, text, text, text, boolean)
  to atomic_signup_service;
grant select, update on table atomic_signup.confirmation_outbox to atomic_signup_service;

-- Login adds the profile; profiles has RLS for the API roles, so the service reads through this.
create function atomic_signup.find_profile(p_user_id uuid)
returns table (name text, role text, onboarding_completed boolean)
language sql stable security definer set search_path = '' as $$
  select p.name, p.role, p.onboarding_completed from public.profiles p where p.id = p_user_id
$$;
revoke all on function atomic_signup.find_profile(uuid) from public;
grant execute on function atomic_signup.find_profile(uuid) to atomic_signup_service;

-- Login looks the profile up by email while GoTrue checks the password (the answer is used only
-- if GoTrue's session is for the same user id), so the database round trip adds no latency.
-- Same lookup as GoTrue's password grant: nil instance id, lower(email), aud, not SSO.
create function atomic_signup.find_profile_by_email(p_email text)
returns table (user_id uuid, name text, role text, onboarding_completed boolean)
language sql stable security definer set search_path = '' as $$
  select u.id, p.name, p.role, p.onboarding_completed
  from auth.users u
  join public.profiles p on p.id = u.id
  where u.instance_id = '00000000-0000-0000-0000-000000000000'
    and lower(u.email) = lower(p_email) and u.aud = 'authenticated' and u.is_sso_user = false
  limit 1
$$;
revoke all on function atomic_signup.find_profile_by_email(text) from public;
grant execute on function atomic_signup.find_profile_by_email(text) to atomic_signup_service;

-- The outbox worker's claim: the oldest due pending row no one else holds, locked FOR UPDATE in
-- the caller's transaction (the lock lasts until the caller commits or dies), with the user's
-- current email.
create function atomic_signup.claim_confirmation()
returns table (id bigint, user_id uuid, email text, attempts integer)
language sql volatile security definer set search_path = '' as $$
  select o.id, o.user_id, u.email::text, o.attempts
  from atomic_signup.confirmation_outbox o
  join auth.users u on u.id = o.user_id
  where o.status = 'pending' and o.next_attempt_at <= now()
  order by o.next_attempt_at, o.id
  limit 1
  for update of o skip locked
$$;
revoke all on function atomic_signup.claim_confirmation() from public;
grant execute on function atomic_signup.claim_confirmation() to atomic_signup_service;
