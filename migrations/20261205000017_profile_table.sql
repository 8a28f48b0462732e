-- The profile's table is the project's to name (PROFILE_TABLE, default public.profiles).
--
-- atomic_signup.profile_table holds it, like atomic_signup.profile_columns holds the columns:
-- `atomic-signup migrate` writes it (the owner's connection), the service role may only read it,
-- and `serve` refuses to start when PROFILE_TABLE names another table. The functions that write
-- and read profiles take the table from there (quoted with %I), never from an argument: whoever
-- holds the service's role cannot point them at another table.
--
-- create_user writes `id`, `role` and the listed columns (created_at and updated_at take their
-- defaults: now(), the transaction's time, as before). The two login lookups now answer the
-- profile as one jsonb object: `role`, `onboarding_completed` when the table has it, and the
-- listed columns.
create table atomic_signup.profile_table (
  singleton boolean primary key default true check (singleton),
  table_schema text not null check (table_schema ~ '^[a-z_][a-z0-9_]{0,62}$'
                                    and table_schema not in ('auth', 'atomic_signup')
                                    and table_schema !~ '^pg_'),
  table_name text not null check (table_name ~ '^[a-z_][a-z0-9_]{0,62}$')
);
comment on table atomic_signup.profile_table is
  'atomic-signup: the table of the profiles (PROFILE_TABLE, written by atomic-signup migrate).';
insert into atomic_signup.profile_table (table_schema, table_name) values ('public', 'profiles');
revoke all on table atomic_signup.profile_table from public;
grant select on table atomic_signup.profile_table to atomic_signup_service;

-- The profile table as SQL text, and whether it has an onboarding_completed column.
create function atomic_signup.profile_relation(out relation text, out has_onboarding boolean)
language sql stable
set search_path = pg_catalog, pg_temp
as $$
  select format('%I.%I', t.table_schema, t.table_name),
         exists (select 1 from pg_catalog.pg_attribute a
                 join pg_catalog.pg_class c on c.oid = a.attrelid
                 join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                 where n.nspname = t.table_schema and c.relname = t.table_name
                   and a.attname = 'onboarding_completed' and a.attnum > 0
                   and not a.attisdropped)
  from atomic_signup.profile_table t
$$;
revoke all on function atomic_signup.profile_relation() from public;

-- The profile of one user as the service answers it (NULL without a row): `role`,
-- `onboarding_completed` when the table has it, and the listed columns.
create function atomic_signup.profile_json(p_user_id uuid)
returns jsonb
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
declare
  v_table record;
  v_row jsonb;
begin
  select * into v_table from atomic_signup.profile_relation();
  execute format('select pg_catalog.to_jsonb(p) from %s p where p.id = $1', v_table.relation)
    into v_row using p_user_id;
  if v_row is null then
    return null;
  end if;
  return (select pg_catalog.jsonb_object_agg(e.key, e.value)
          from pg_catalog.jsonb_each(v_row) e
          where e.key in ('role', 'onboarding_completed')
             or e.key in (select c.column_name from atomic_signup.profile_columns c));
end
$$;
revoke all on function atomic_signup.profile_json(uuid) from public;

-- create_user as in 20261205000016, writing the configured table.
create or replace function atomic_signup.create_user(
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
  v_table record;
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
  -- typed by jsonb_populate_record as the columns are, in the table profile_table names. An
  -- on_auth_user_created trigger may already have inserted this row: ours wins.
  select * into v_table from atomic_signup.profile_relation();
  select coalesce(string_agg(format(', %I', c.column_name), '' order by c.column_name), ''),
         coalesce(string_agg(format(', r.%I', c.column_name), '' order by c.column_name), ''),
         coalesce(string_agg(format(', %1$I = excluded.%1$I', c.column_name), ''
                             order by c.column_name), '')
  into v_columns, v_values, v_updates
  from atomic_signup.profile_columns c
  where p_profile ? c.column_name;

  execute format(
    'insert into %1$s as p (id, role%2$s)
     select $1, $2%3$s from pg_catalog.jsonb_populate_record(null::%1$s, $3) r
     on conflict (id) do update set role = excluded.role%4$s
     returning %5$s',
    v_table.relation, v_columns, v_values, v_updates,
    case when v_table.has_onboarding then 'p.onboarding_completed' else 'false' end)
  into v_onboarding
  using p_user_id, p_role, p_profile;

  return query select v_confirmed_at, v_onboarding;
end
$$;

-- The login lookups, answering the profile as jsonb. Their result types change: dropped and
-- created again, with their grants. find_profile_by_email keeps GoTrue's lookup and the
-- password kind of 20261204000012.
drop function atomic_signup.find_profile(uuid);
create function atomic_signup.find_profile(p_user_id uuid)
returns jsonb
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  return atomic_signup.profile_json(p_user_id);
end
$$;
revoke all on function atomic_signup.find_profile(uuid) from public;
grant execute on function atomic_signup.find_profile(uuid) to atomic_signup_service;

drop function atomic_signup.find_profile_by_email(text);
create function atomic_signup.find_profile_by_email(p_email text)
returns table (user_id uuid, profile jsonb, password_kind text)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_user uuid;
  v_kind text;
begin
  select u.id,
         case when coalesce(u.encrypted_password, '') = '' then null
              else left(coalesce(
                substring(u.encrypted_password from '^(\$argon2[a-z]*\$v=[0-9]+\$m=[0-9]+,t=[0-9]+,p=[0-9]+)'),
                substring(u.encrypted_password from '^(\$2[a-z]?\$[0-9]+)'),
                substring(u.encrypted_password from '^(\$fbscrypt\$[^$]*)'),
                'other'), 64)
         end
  into v_user, v_kind
  from auth.users u
  where u.instance_id = '00000000-0000-0000-0000-000000000000'
    and lower(u.email) = lower(p_email) and u.aud = 'authenticated' and u.is_sso_user = false
  limit 1;
  if not found then
    return;
  end if;
  return query select v_user, atomic_signup.profile_json(v_user), v_kind;
end
$$;
revoke all on function atomic_signup.find_profile_by_email(text) from public;
grant execute on function atomic_signup.find_profile_by_email(text) to atomic_signup_service;
