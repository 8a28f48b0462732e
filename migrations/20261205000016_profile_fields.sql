-- Project-defined profile fields: the signup writes the columns of public.profiles that the
-- project's profile schema (PROFILE_SCHEMA_PATH) declares, instead of exactly `name`.
--
-- atomic_signup.profile_columns is the allow-list of those columns, kept in the database like
-- atomic_signup.signup_roles: `atomic-signup migrate` writes the schema's properties into it
-- (the owner's connection), the service role may only read it, and `serve` refuses to start
-- when the schema declares a field the list lacks. create_user takes the profile as one jsonb
-- object and writes, with jsonb_populate_record, only the columns on the list: whoever holds the
-- service's role can never write `id`, `role` or any column the project did not declare.
create table atomic_signup.profile_columns (
  column_name text primary key
    check (column_name ~ '^[a-z_][a-z0-9_]{0,62}$'
           and column_name not in ('id', 'role', 'onboarding_completed', 'created_at', 'updated_at'))
);
comment on table atomic_signup.profile_columns is
  'atomic-signup: the public.profiles columns a signup may write (PROFILE_SCHEMA_PATH, written by atomic-signup migrate).';
insert into atomic_signup.profile_columns (column_name) values ('name');
revoke all on table atomic_signup.profile_columns from public;
grant select on table atomic_signup.profile_columns to atomic_signup_service;

-- The profile argument: a JSON object whose keys are all on the list. SQLSTATE 22023 otherwise
-- (the service never sends anything else).
create function atomic_signup.check_profile_argument(p_profile jsonb)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_key text;
begin
  if p_profile is null or jsonb_typeof(p_profile) <> 'object' then
    raise exception 'the profile must be a JSON object' using errcode = '22023';
  end if;
  select k into v_key
  from jsonb_object_keys(p_profile) k
  where not exists (select 1 from atomic_signup.profile_columns c where c.column_name = k)
  limit 1;
  if found then
    raise exception 'the profile field % is not in atomic_signup.profile_columns',
      left(v_key, 64) using errcode = '22023';
  end if;
end
$$;
revoke all on function atomic_signup.check_profile_argument(jsonb) from public;

-- The signatures change (p_name becomes p_profile), so both functions are dropped and created
-- again: create_user for the service's definer function only, create_user_idempotent with the
-- service role's grant.
drop function atomic_signup.create_user_idempotent(
  uuid, text, text, text, text, boolean, text, uuid, smallint, jsonb);
drop function atomic_signup.create_user(uuid, text, text, text, text, boolean);

-- create_user as in 20261203000011, with the profile from p_profile.
create function atomic_signup.create_user(
  p_user_id uuid,
  p_email text,               -- already trimmed, lower-cased, validated by the service
  p_encrypted_password text,  -- argon2id PHC string ($argon2id$v=19$m=..,t=..,p=..$salt$hash)
  p_role text,
  p_email_confirmed boolean,  -- false when REQUIRE_EMAIL_CONFIRMATION=true
  p_profile jsonb             -- the declared profile fields (checked by check_profile_argument)
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
  -- The display name, when the project has one, as GoTrue's clients expect it.
  v_user_meta jsonb :=
    case when p_profile ? 'name' then jsonb_build_object('name', p_profile -> 'name')
         else '{}'::jsonb end
    || case when p_email_confirmed then '{"email_verified": true}'::jsonb else '{}'::jsonb end;
  v_columns text;
  v_values text;
  v_updates text;
  v_onboarding boolean;
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

  -- The profile: the fields sent, restricted to the listed columns (names quoted with %I),
  -- typed by jsonb_populate_record as the columns are. An on_auth_user_created trigger may
  -- already have inserted this row: ours wins.
  select coalesce(string_agg(format(', %I', c.column_name), '' order by c.column_name), ''),
         coalesce(string_agg(format(', r.%I', c.column_name), '' order by c.column_name), ''),
         coalesce(string_agg(format(', %1$I = excluded.%1$I', c.column_name), ''
                             order by c.column_name), '')
  into v_columns, v_values, v_updates
  from atomic_signup.profile_columns c
  where p_profile ? c.column_name;

  execute format(
    'insert into public.profiles as p (id, role, created_at, updated_at%s)
     select $1, $2, $3, $3%s from pg_catalog.jsonb_populate_record(null::public.profiles, $4) r
     on conflict (id) do update set role = excluded.role%s
     returning p.onboarding_completed',
    v_columns, v_values, v_updates)
  into v_onboarding
  using p_user_id, p_role, v_now, p_profile;

  return query select v_confirmed_at, v_onboarding;
end
$$;
revoke all on function atomic_signup.create_user(uuid, text, text, text, boolean, jsonb) from public;

-- create_user_idempotent as in 20261204000015, with the profile.
create function atomic_signup.create_user_idempotent(
  p_user_id uuid, p_email text, p_encrypted_password text, p_role text,
  p_email_confirmed boolean, p_profile jsonb,
  p_key text, p_claim uuid, p_response_status smallint, p_response jsonb
)
returns table (out_email_confirmed_at timestamptz, out_onboarding_completed boolean)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_confirmed_at timestamptz;
  v_onboarding boolean;
begin
  perform atomic_signup.check_signup_arguments(p_email, p_role, p_encrypted_password);
  perform atomic_signup.check_profile_argument(p_profile);

  select c.out_email_confirmed_at, c.out_onboarding_completed into v_confirmed_at, v_onboarding
  from atomic_signup.create_user(
    p_user_id, p_email, p_encrypted_password, p_role, p_email_confirmed, p_profile) c;

  if p_key is not null then
    update atomic_signup.idempotency_keys t
    set state = 'completed', claim = null, locked_until = null, user_id = p_user_id,
        response_status = p_response_status, response_body = p_response,
        onboarding_completed = v_onboarding
    where t.key = p_key and t.claim = p_claim and t.state = 'in_progress';
    if not found then
      raise exception 'this request no longer holds its idempotency key'
        using errcode = 'AS409';
    end if;
  end if;

  return query select v_confirmed_at, v_onboarding;
end
$$;
revoke all on function atomic_signup.create_user_idempotent(
  uuid, text, text, text, boolean, jsonb, text, uuid, smallint, jsonb) from public;
grant execute on function atomic_signup.create_user_idempotent(
  uuid, text, text, text, boolean, jsonb, text, uuid, smallint, jsonb) to atomic_signup_service;
