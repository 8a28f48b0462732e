-- The signup function checks its arguments itself (defence in depth).
--
-- The service validates every field before it calls create_user_idempotent, but the function
-- runs as its owner: whoever holds the service's database role (a leaked password) could call it
-- directly and create a user with any role (`Admin`), or `ADA@example.com` next to
-- `ada@example.com` (GoTrue finds users by lower(email), so the second could never log in and
-- would shadow the first), or a password column GoTrue cannot verify. The function now refuses:
-- - an email that is not lower(btrim(email)), or is empty;
-- - a role that is not in atomic_signup.signup_roles;
-- - a password that is not an argon2id PHC string of GoTrue's shape.
-- SQLSTATE 22023 (invalid_parameter_value); the service never sends such arguments.
--
-- atomic_signup.signup_roles is the allow-list kept in the database. `atomic-signup migrate`
-- writes SIGNUP_ROLES into it (the owner's connection); the service role may only read it, and
-- `serve` refuses to start when SIGNUP_ROLES names a role that is not in it. To change the
-- roles: set SIGNUP_ROLES, run `atomic-signup migrate`, then restart the service.
create table atomic_signup.signup_roles (
  role text primary key check (role <> '' and role = btrim(role))
);
comment on table atomic_signup.signup_roles is
  'atomic-signup: the roles a signup may ask for (SIGNUP_ROLES, written by atomic-signup migrate).';
insert into atomic_signup.signup_roles (role) values ('Creator'), ('Brand');
revoke all on table atomic_signup.signup_roles from public;
grant select on table atomic_signup.signup_roles to atomic_signup_service;

create function atomic_signup.check_signup_arguments(
  p_email text, p_role text, p_encrypted_password text
)
returns void
language plpgsql stable
set search_path = pg_catalog, pg_temp
as $$
begin
  if p_email is null or p_email = '' or p_email <> lower(btrim(p_email)) then
    raise exception 'the email must be trimmed and lower-case' using errcode = '22023';
  end if;
  if not exists (select 1 from atomic_signup.signup_roles r where r.role = p_role) then
    raise exception 'the role is not one of atomic_signup.signup_roles' using errcode = '22023';
  end if;
  if p_encrypted_password is null or p_encrypted_password !~
       '^\$argon2id\$v=19\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$' then
    raise exception 'the password must be an argon2id PHC string' using errcode = '22023';
  end if;
end
$$;
revoke all on function atomic_signup.check_signup_arguments(text, text, text) from public;

-- create_user_idempotent as in 20261125000005, with the check first.
create or replace function atomic_signup.create_user_idempotent(
  p_user_id uuid, p_email text, p_encrypted_password text, p_name text, p_role text,
  p_email_confirmed boolean,
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

  select c.out_email_confirmed_at, c.out_onboarding_completed into v_confirmed_at, v_onboarding
  from atomic_signup.create_user(
    p_user_id, p_email, p_encrypted_password, p_name, p_role, p_email_confirmed) c;

  if p_key is not null then
    update atomic_signup.idempotency_keys t
    set state = 'completed', claim = null, locked_until = null, user_id = p_user_id,
        response_status = p_response_status,
        response_body = case when p_response ? 'onboarding_completed'
                             then p_response || jsonb_build_object('onboarding_completed', v_onboarding)
                             else p_response end
    where t.key = p_key and t.claim = p_claim and t.state = 'in_progress';
    if not found then
      raise exception 'this request no longer holds its idempotency key'
        using errcode = 'AS409';
    end if;
  end if;

  return query select v_confirmed_at, v_onboarding;
end
$$;
