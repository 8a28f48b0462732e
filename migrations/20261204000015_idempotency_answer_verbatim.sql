-- The stored answer of an Idempotency-Key is the answer the service built, byte for byte.
--
-- Until now create_user_idempotent edited that JSON: it merged the profile's
-- `onboarding_completed` (which a trigger may set, so only the transaction knows it) into the
-- stored body. The HTTP answer was then computed in two places, Rust and SQL. Now the function
-- stores `p_response` as given and the transaction's fact in a column of its own; the service
-- builds the replayed answer from both, in the one place that builds the first answer.
--
-- Rows completed before this migration have a NULL column and an already merged body, which
-- the service replays as it is.
alter table atomic_signup.idempotency_keys add column onboarding_completed boolean;
comment on column atomic_signup.idempotency_keys.onboarding_completed is
  'completed by a signup transaction: the profile''s onboarding_completed as it wrote it (NULL when no user was created).';

-- create_user_idempotent as in 20261204000013, storing p_response verbatim.
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

-- claim_idempotency_key as in 20261125000005 (search_path as 20261203000007 set it), also
-- returning the column, and clearing it when a key is taken over. Its result type changes, so
-- it is dropped and created again, with its grant.
drop function atomic_signup.claim_idempotency_key(text, bytea, uuid, interval, interval);
create function atomic_signup.claim_idempotency_key(
  p_key text, p_fingerprint bytea, p_claim uuid, p_lease interval, p_ttl interval
)
returns table (outcome text, response_status smallint, response_body jsonb,
               onboarding_completed boolean)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  k atomic_signup.idempotency_keys;
begin
  loop
    insert into atomic_signup.idempotency_keys as t
      (key, fingerprint, state, claim, locked_until, expires_at)
    values (p_key, p_fingerprint, 'in_progress', p_claim, now() + p_lease, now() + p_ttl)
    on conflict (key) do nothing;
    if found then
      return query select 'claimed'::text, null::smallint, null::jsonb, null::boolean;
      return;
    end if;

    select * into k from atomic_signup.idempotency_keys t where t.key = p_key for update;
    if not found then
      continue;  -- released or purged in between: try the insert again
    end if;

    if k.expires_at <= now() or (k.state = 'in_progress' and k.locked_until <= now()) then
      -- Expired, or abandoned by a request that died: take it over (nothing of it committed,
      -- and if it commits later it finds its claim gone and rolls back).
      update atomic_signup.idempotency_keys t
      set fingerprint = p_fingerprint, state = 'in_progress', claim = p_claim,
          locked_until = now() + p_lease, response_status = null, response_body = null,
          onboarding_completed = null, user_id = null, created_at = now(),
          expires_at = now() + p_ttl
      where t.key = p_key;
      return query select 'claimed'::text, null::smallint, null::jsonb, null::boolean;
    elsif k.fingerprint <> p_fingerprint then
      return query select 'mismatch'::text, null::smallint, null::jsonb, null::boolean;
    elsif k.state = 'completed' then
      return query select 'replay'::text, k.response_status, k.response_body,
                          k.onboarding_completed;
    else
      return query select 'in_progress'::text, null::smallint, null::jsonb, null::boolean;
    end if;
    return;
  end loop;
end
$$;
revoke all on function atomic_signup.claim_idempotency_key(text, bytea, uuid, interval, interval) from public;
grant execute on function atomic_signup.claim_idempotency_key(text, bytea, uuid, interval, interval) to atomic_signup_service;
