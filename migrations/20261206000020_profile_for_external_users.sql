-- Profiles for users that GoTrue creates itself (OAuth, invites, magic links, the dashboard,
-- GoTrue's own /signup), in the same transaction as their auth.users row: an AFTER INSERT
-- trigger on auth.users, switched on by `atomic-signup migrate` with
-- PROFILE_FOR_EXTERNAL_USERS=true (it writes the choice into external_user_profiles; false
-- switches it off again; off until then).
--
-- The profile follows `atomic-signup repair`'s rules: the name from the user's metadata, `name`
-- then `full_name`, the first that is a valid display name, else the email's local part with
-- every run of non-alphanumeric characters made one space, else 'User'; the role from
-- app_metadata.role when it is in atomic_signup.signup_roles, else PROFILE_FOR_EXTERNAL_USERS_ROLE;
-- the other declared fields their schema defaults (written by migrate), else their column
-- defaults (insert_profile).
--
-- - Exactly once, next to a project's own on_auth_user_created trigger: triggers of one event
--   fire in the order of their names, and ours is named to come last (zz_…); it writes nothing
--   when the user has a profile by then. Our own signup upserts its profile after the user's
--   insert (create_user), so a signup's profile is the signup's.
-- - Never fails GoTrue's insert: anything that goes wrong (a required column without a default,
--   a CHECK) is caught, reported as a WARNING, and the user is left without a profile (`check`
--   counts it, `repair` fixes it).
-- - Runs as the function's owner (SECURITY DEFINER): GoTrue's role needs no right on the profile
--   table. search_path pinned like every definer function; the only argument is the new row.
create table atomic_signup.external_user_profiles (
  only_row boolean primary key default true check (only_row),
  enabled boolean not null default false,
  -- The role of a user whose app metadata names none of signup_roles.
  default_role text check (default_role is null or (default_role <> '' and default_role = btrim(default_role))),
  -- The profile fields' schema defaults ({"field": value}).
  defaults jsonb not null default '{}'::jsonb check (jsonb_typeof(defaults) = 'object'),
  check (not enabled or default_role is not null)
);
comment on table atomic_signup.external_user_profiles is
  'atomic-signup: whether users created outside the service get a profile (PROFILE_FOR_EXTERNAL_USERS, written by atomic-signup migrate).';
insert into atomic_signup.external_user_profiles default values;
revoke all on table atomic_signup.external_user_profiles from public;
grant select on table atomic_signup.external_user_profiles to atomic_signup_service;

create function atomic_signup.profile_for_external_user()
returns trigger
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_settings atomic_signup.external_user_profiles;
  v_meta jsonb;
  v_app jsonb;
  v_name text;
  v_role text;
  v_profile jsonb;
begin
  select * into v_settings from atomic_signup.external_user_profiles;
  if not coalesce(v_settings.enabled, false) then
    return null;
  end if;
  begin
    if atomic_signup.profile_json(new.id) is not null then
      return null;  -- a project's own trigger gave it one
    end if;
    v_meta := case when jsonb_typeof(new.raw_user_meta_data) = 'object'
                   then new.raw_user_meta_data else '{}'::jsonb end;
    v_app := case when jsonb_typeof(new.raw_app_meta_data) = 'object'
                  then new.raw_app_meta_data else '{}'::jsonb end;
    select btrim(c) into v_name
    from unnest(array[v_meta ->> 'name', v_meta ->> 'full_name']) with ordinality as n (c, i)
    where btrim(c) <> '' and char_length(btrim(c)) <= 100
      and atomic_signup.display_name_is_valid(btrim(c))
    order by i
    limit 1;
    if v_name is null then
      v_name := left(btrim(regexp_replace(split_part(coalesce(new.email, ''), '@', 1),
                                          '[^[:alnum:]]+', ' ', 'g')), 100);
      if v_name = '' or not atomic_signup.display_name_is_valid(v_name) then
        v_name := 'User';
      end if;
    end if;
    v_role := v_app ->> 'role';
    if v_role is null
       or not exists (select 1 from atomic_signup.signup_roles r where r.role = v_role) then
      v_role := v_settings.default_role;
    end if;
    v_profile := v_settings.defaults
      || case when exists (select 1 from atomic_signup.profile_columns c
                           where c.column_name = 'name')
              then jsonb_build_object('name', v_name) else '{}'::jsonb end;
    perform atomic_signup.insert_profile(new.id, v_role, v_profile);
  exception when others then
    raise warning 'atomic-signup: user % was created without a profile: % (SQLSTATE %)',
      new.id, sqlerrm, sqlstate;
  end;
  return null;
end
$$;
revoke all on function atomic_signup.profile_for_external_user() from public;

create trigger zz_atomic_signup_profile_for_external_user
  after insert on auth.users
  for each row execute function atomic_signup.profile_for_external_user();
