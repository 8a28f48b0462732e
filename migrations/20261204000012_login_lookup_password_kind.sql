-- The login's lookup by email also says what kind of password hash the user has.
--
-- Failed logins are held until a floor learnt from recent failed logins of known users (the
-- time GoTrue took to compare a hash). A user without a password (encrypted_password NULL or '':
-- invited, magic-link and OAuth users) fails inside GoTrue without any hash, fast; counted as a
-- known user's failure, an attacker with such an account dragged the floor down and unmasked
-- unknown emails. The service learns the floor only from users for whom GoTrue really compared
-- a hash: those with a non-empty encrypted_password. `password_kind` is NULL for the others,
-- else the hash's algorithm and cost, never its salt or hash (`$argon2id$v=19$m=19456,t=2,p=1`,
-- `$2a$10`, `$fbscrypt$v=1,n=14,r=8,p=1`, or `other`): the service keeps a floor per kind,
-- so an attacker who fails logins only on accounts with a cheap hash cannot lower the floor
-- below what the costly kinds take. The return type changes, so the function is dropped and
-- created again (with its grant).
drop function atomic_signup.find_profile_by_email(text);

create function atomic_signup.find_profile_by_email(p_email text)
returns table (user_id uuid, name text, role text, onboarding_completed boolean,
               password_kind text)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return query
  select u.id, p.name, p.role, p.onboarding_completed,
         case when coalesce(u.encrypted_password, '') = '' then null
              else left(coalesce(
                substring(u.encrypted_password from '^(\$argon2[a-z]*\$v=[0-9]+\$m=[0-9]+,t=[0-9]+,p=[0-9]+)'),
                substring(u.encrypted_password from '^(\$2[a-z]?\$[0-9]+)'),
                substring(u.encrypted_password from '^(\$fbscrypt\$[^$]*)'),
                'other'), 64)
         end
  from auth.users u
  left join public.profiles p on p.id = u.id
  where u.instance_id = '00000000-0000-0000-0000-000000000000'
    and lower(u.email) = lower(p_email) and u.aud = 'authenticated' and u.is_sso_user = false
  limit 1;
end
$$;
revoke all on function atomic_signup.find_profile_by_email(text) from public;
grant execute on function atomic_signup.find_profile_by_email(text) to atomic_signup_service;
