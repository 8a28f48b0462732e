-- The profile's SQL is generated once, by `migrate`, instead of built on every call.
--
-- 20261205000016/17 wrote and read the profile with dynamic SQL (EXECUTE of a statement built
-- from atomic_signup.profile_columns on every signup and login): Postgres planned it on every
-- call, which doubled its CPU per signup and tripled the login's lookup. Now
-- atomic_signup.define_profile, run by `atomic-signup migrate` on the owner's connection, records
-- PROFILE_TABLE and the schema's fields (as before) and (re)creates two ordinary PL/pgSQL
-- functions with static SQL for exactly that table and those columns, whose plans each session
-- caches:
--   insert_profile(user, role, profile)  the signup's upsert of the profile; a declared field
--                                        left out takes the column's default, as an INSERT
--                                        that does not name it would;
--   profile_json(user)                   the profile as login answers it: role,
--                                        onboarding_completed when the table has it, the fields.
-- Names are quoted with %I, defaults are Postgres's own text of the column's default expression.
-- Neither function is callable by the service role: only create_user and the login lookups
-- (definer functions) call them.
create function atomic_signup.define_profile(p_schema text, p_table text, p_columns text[])
returns void
language plpgsql volatile
set search_path = pg_catalog, pg_temp
as $$
declare
  v_relation text := format('%I.%I', p_schema, p_table);
  v_class oid;
  v_onboarding boolean;
  v_column text;
  v_default text;
  v_names text := '';
  v_values text := '';
  v_updates text := '';
  v_json text := '';
begin
  -- The two tables' CHECK constraints refuse names that are not plain identifiers, and the
  -- service's own columns.
  update atomic_signup.profile_table set table_schema = p_schema, table_name = p_table;
  delete from atomic_signup.profile_columns where column_name <> all(p_columns);
  insert into atomic_signup.profile_columns (column_name)
  select unnest(p_columns) on conflict (column_name) do nothing;

  select c.oid into v_class
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = p_schema and c.relname = p_table;
  v_onboarding := exists (select 1 from pg_attribute a
                          where a.attrelid = v_class and a.attname = 'onboarding_completed'
                            and a.attnum > 0 and not a.attisdropped);

  for v_column in select c.column_name from atomic_signup.profile_columns c order by 1 loop
    select pg_get_expr(d.adbin, d.adrelid) into v_default
    from pg_attribute a join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attrelid = v_class and a.attname = v_column and not a.attisdropped;
    v_names := v_names || format(', %I', v_column);
    v_values := v_values || format(', case when p_profile ? %L then r.%I else %s end',
                                   v_column, v_column, coalesce(v_default, 'null'));
    v_updates := v_updates || format(', %1$I = case when p_profile ? %2$L then excluded.%1$I else p.%1$I end',
                                     v_column, v_column);
    v_json := v_json || format(', %L, p.%I', v_column, v_column);
  end loop;

  execute format($f$
    create or replace function atomic_signup.insert_profile(
      p_user_id uuid, p_role text, p_profile jsonb)
    returns boolean
    language plpgsql volatile
    set search_path = pg_catalog, pg_temp
    as $body$
    declare
      v_onboarding boolean;
    begin
      insert into %1$s as p (id, role%2$s)
      select p_user_id, p_role%3$s
      from pg_catalog.jsonb_populate_record(null::%1$s, p_profile) r
      on conflict (id) do update set role = excluded.role%4$s
      returning %5$s into v_onboarding;
      return v_onboarding;
    end
    $body$
    $f$,
    v_relation, v_names, v_values, v_updates,
    case when v_onboarding then 'p.onboarding_completed' else 'false' end);
  execute 'revoke all on function atomic_signup.insert_profile(uuid, text, jsonb) from public';

  execute format($f$
    create or replace function atomic_signup.profile_json(p_user_id uuid)
    returns jsonb
    language plpgsql stable
    set search_path = pg_catalog, pg_temp
    as $body$
    begin
      return (select pg_catalog.jsonb_build_object('role', p.role%2$s%3$s)
              from %1$s p where p.id = p_user_id);
    end
    $body$
    $f$,
    v_relation,
    case when v_onboarding then ', ''onboarding_completed'', p.onboarding_completed' else '' end,
    v_json);
  execute 'revoke all on function atomic_signup.profile_json(uuid) from public';
end
$$;
revoke all on function atomic_signup.define_profile(text, text, text[]) from public;

-- create_user as in 20261205000017, the profile written by insert_profile.
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

  -- The profile (an on_auth_user_created trigger may already have inserted it: ours wins).
  return query select v_confirmed_at, atomic_signup.insert_profile(p_user_id, p_role, p_profile);
end
$$;

drop function atomic_signup.profile_relation();

-- The functions for today's table and fields (migrate runs define_profile again with
-- PROFILE_TABLE and PROFILE_SCHEMA_PATH).
select atomic_signup.define_profile(t.table_schema, t.table_name,
                                    array(select c.column_name from atomic_signup.profile_columns c))
from atomic_signup.profile_table t;
