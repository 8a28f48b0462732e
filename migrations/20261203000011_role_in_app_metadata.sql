-- The role chosen at signup moves from raw_user_meta_data to raw_app_meta_data.
--
-- Every user can rewrite their own user metadata through GoTrue's PUT /user, so an RLS policy on
-- auth.jwt()->'user_metadata'->>'role' was a privilege escalation. App metadata can be changed
-- only with the service role key; GoTrue keeps unknown keys in it (it merges only `provider`
-- and `providers`) and copies it into the JWT as `app_metadata`. User metadata keeps the name.
--
-- The identity's identity_data keeps email_verified false even when the email is confirmed at
-- signup: that is what GoTrue's admin API writes (User.Confirm sets email_verified only in the
-- user metadata; only /verify updates the identity), and this service writes what it writes.

create or replace function atomic_signup.create_user(
  p_user_id uuid,
  p_email text,               -- already trimmed, lower-cased, validated by the service
  p_encrypted_password text,  -- argon2id PHC string ($argon2id$v=19$m=..,t=..,p=..$salt$hash)
  p_name text,
  p_role text,
  p_email_confirmed boolean   -- false when REQUIRE_EMAIL_CONFIRMATION=true
)
returns table (out_email_confirmed_at timestamptz, out_onboarding_completed boolean)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_now timestamptz := now();
  v_confirmed_at timestamptz := case when p_email_confirmed then v_now end;
  -- The role lives in app metadata, which users cannot change (GoTrue's PUT /user edits only
  -- user metadata); it reaches the JWT as app_metadata.role.
  v_app_meta jsonb := jsonb_build_object('provider', 'email', 'providers', jsonb_build_array('email'),
                                         'role', p_role);
  v_user_meta jsonb := jsonb_build_object('name', p_name)
    || case when p_email_confirmed then '{"email_verified": true}'::jsonb else '{}'::jsonb end;
begin
  insert into auth.users (
    instance_id, id, aud, role, email, encrypted_password, email_confirmed_at,
    -- GoTrue scans these into Go strings: '' , never NULL (the first four have no default).
    confirmation_token, recovery_token, email_change_token_new, email_change,
    email_change_token_current, phone_change, phone_change_token, reauthentication_token,
    email_change_confirm_status,
    phone,                 -- NULL, never '': users_phone_key is UNIQUE
    invited_at, confirmation_sent_at, recovery_sent_at, email_change_sent_at,
    last_sign_in_at, phone_confirmed_at, phone_change_sent_at, reauthentication_sent_at,
    banned_until, deleted_at,
    raw_app_meta_data, raw_user_meta_data,
    is_super_admin, is_sso_user, is_anonymous,
    created_at, updated_at  -- mandatory: a NULL here breaks every login (time.Time scan)
    -- confirmed_at is generated
  ) values (
    '00000000-0000-0000-0000-000000000000', p_user_id, 'authenticated', 'authenticated',
    p_email, p_encrypted_password, v_confirmed_at,
    '', '', '', '',
    '', '', '', '',
    0,
    null,
    null, null, null, null,
    null, null, null, null,
    null, null,
    v_app_meta, v_user_meta,
    null, false, false,
    v_now, v_now
  );

  insert into auth.identities (
    id, provider_id, user_id, provider, identity_data, last_sign_in_at, created_at, updated_at
  ) values (
    gen_random_uuid(),
    p_user_id::text,       -- the user id as text, not the email
    p_user_id,
    'email',
    jsonb_build_object(
      'sub', p_user_id::text, 'email', p_email,
      'email_verified', false, 'phone_verified', false),
    v_now, v_now, v_now
  );

  -- GoTrue's audit trail: what /signup writes for an email user (actor = the new user).
  insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
  values (
    '00000000-0000-0000-0000-000000000000', gen_random_uuid(),
    json_build_object(
      'actor_id', p_user_id, 'actor_via_sso', false, 'actor_username', p_email,
      'action', 'user_signedup', 'log_type', 'team',
      'traits', json_build_object('provider', 'email')),
    v_now, '');

  -- "Send the confirmation mail to this user": delivered by the service's outbox worker.
  if not p_email_confirmed then
    insert into atomic_signup.confirmation_outbox (user_id, created_at, next_attempt_at)
    values (p_user_id, v_now, v_now);
  end if;

  -- An on_auth_user_created trigger may already have inserted this row: ours wins.
  return query
  insert into public.profiles as p (id, name, role, created_at, updated_at)
  values (p_user_id, p_name, p_role, v_now, v_now)
  on conflict (id) do update set name = excluded.name, role = excluded.role
  returning v_confirmed_at, p.onboarding_completed;
end
$$;


-- Users this service created before: the role from their profile (the authoritative copy)
-- into app metadata, and out of user metadata.
update auth.users u
set raw_app_meta_data = case when jsonb_typeof(u.raw_app_meta_data) = 'object'
                             then u.raw_app_meta_data else '{}'::jsonb end
                        || jsonb_build_object('role', p.role),
    raw_user_meta_data = u.raw_user_meta_data - 'role'
from public.profiles p
where p.id = u.id
  and jsonb_typeof(u.raw_user_meta_data) = 'object'
  and u.raw_user_meta_data ? 'role';
