-- THE signup transaction: one call of atomic_signup.create_user(...) inserts the auth user, its
-- email identity, the profile and, when the email must be confirmed, the confirmation outbox row.
-- Called as a single statement in autocommit mode, it is one
-- transaction and one round trip: either all of its rows are committed or none is.
--
-- Why a function and not one statement with data-modifying CTEs: many Supabase projects have the
-- documented `on_auth_user_created` AFTER INSERT trigger on auth.users that inserts a profile.
-- AFTER triggers fire at the end of the statement that caused them; with CTEs that is after our
-- own profile insert, so the trigger's plain INSERT would hit profiles_pkey and abort the signup.
-- Here each INSERT is its own statement: the trigger (if any) has run when we upsert the profile,
-- and `on conflict (id) do update` leaves exactly one profile holding the validated name and role.
--
-- The auth rows follow ../shared/gotrue-facts.md, "Row recipe": what GoTrue's admin API writes
-- for an email/password user. GoTrue scans some of these columns into plain Go strings and
-- time.Time values: a NULL there makes every login of that user fail with a 500.
--
-- It also writes GoTrue's audit row (auth.audit_log_entries, action user_signedup), as GoTrue does
-- in the transaction that creates a user, so the Supabase dashboard shows the signup.
--
-- SECURITY DEFINER, owned by the role that runs the migrations (`postgres` on Supabase, which may
-- write the auth tables and bypasses their RLS): the service's own role then needs nothing but
-- EXECUTE on this function (see 20261124000004_service_role.sql), and can neither read password
-- hashes nor write the auth tables any other way. search_path is pinned to '' and every name is
-- schema-qualified, as a definer function must.
create function atomic_signup.create_user(
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
set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_confirmed_at timestamptz := case when p_email_confirmed then v_now end;
  v_user_meta jsonb := jsonb_build_object('name', p_name, 'role', p_role)
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
    '{"provider": "email", "providers": ["email"]}'::jsonb, v_user_meta,
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

comment on function atomic_signup.create_user(uuid, text, text, text, text, boolean) is
  'atomic-signup: inserts auth.users + auth.identities + public.profiles (+ confirmation outbox row) for one signup, all or nothing.';
revoke all on function atomic_signup.create_user(uuid, text, text, text, text, boolean) from public;
