-- Idempotency-Key on signup: a retry with the same key and the same request replays the first
-- answer instead of signing up again. All state lives here, so every replica behaves the same.
--
-- Life of a key:
--   claim_idempotency_key    before the password is hashed, in its own short transaction: the
--                            row is inserted 'in_progress' with a random claim id and a lease.
--   create_user_idempotent   THE signup transaction (create_user) also turns the row into
--                            'completed' with the answer to replay, so a committed signup and its
--                            stored answer cannot exist without each other.
--   release_idempotency_key  a signup that failed gives its key back: a retry runs again.
--   purge_idempotency_keys   the service deletes keys 24 h after their first use.
-- A request that died without releasing (crash, timeout) leaves an 'in_progress' row whose
-- lease runs out; the next request with that key takes it over. If the dead request's
-- transaction commits after all, it finds its claim gone and rolls back: never two users.
create table atomic_signup.idempotency_keys (
  key text primary key check (length(key) between 1 and 255),
  -- HMAC-SHA256 of the validated request under IDEMPOTENCY_SECRET (never a plain hash: the
  -- request holds a password).
  fingerprint bytea not null,
  state text not null check (state in ('in_progress', 'completed')),
  claim uuid,                      -- in_progress: the request holding the key
  locked_until timestamptz,        -- in_progress: end of its lease
  response_status smallint,        -- completed: the answer to replay
  response_body jsonb,
  user_id uuid,                    -- completed: the user the signup created
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  check (state = 'completed' or (claim is not null and locked_until is not null)),
  check (state = 'in_progress' or (response_status is not null and response_body is not null))
);
create index idempotency_keys_expires_at on atomic_signup.idempotency_keys (expires_at);
comment on table atomic_signup.idempotency_keys is
  'atomic-signup: Idempotency-Key of signup requests (24 h); written only through the functions below.';

-- The claim. Outcomes: 'claimed' (go ahead), 'replay' (with the stored answer), 'mismatch' (the
-- key was used for another request), 'in_progress' (a live request holds it).
create function atomic_signup.claim_idempotency_key(
  p_key text, p_fingerprint bytea, p_claim uuid, p_lease interval, p_ttl interval
)
returns table (outcome text, response_status smallint, response_body jsonb)
language plpgsql volatile security definer set search_path = '' as $$
declare
  k atomic_signup.idempotency_keys;
begin
  loop
    insert into atomic_signup.idempotency_keys as t
      (key, fingerprint, state, claim, locked_until, expires_at)
    values (p_key, p_fingerprint, 'in_progress', p_claim, now() + p_lease, now() + p_ttl)
    on conflict (key) do nothing;
    if found then
      return query select 'claimed'::text, null::smallint, null::jsonb;
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
          user_id = null, created_at = now(), expires_at = now() + p_ttl
      where t.key = p_key;
      return query select 'claimed'::text, null::smallint, null::jsonb;
    elsif k.fingerprint <> p_fingerprint then
      return query select 'mismatch'::text, null::smallint, null::jsonb;
    elsif k.state = 'completed' then
      return query select 'replay'::text, k.response_status, k.response_body;
    else
      return query select 'in_progress'::text, null::smallint, null::jsonb;
    end if;
    return;
  end loop;
end
$$;

-- THE signup transaction, as the service calls it: create_user, then, when the request carries
-- a key (p_key not null), the key becomes 'completed' with the answer the service is about to
-- send. `p_response` is that answer except what only this transaction knows: its
-- `onboarding_completed` (a trigger may have set it) is filled in here. Raises SQLSTATE 'AS409'
-- when the request no longer holds the key (its lease ran out and another request took it
-- over): then nothing of this signup is committed. Without a key the four key arguments are null.
create function atomic_signup.create_user_idempotent(
  p_user_id uuid, p_email text, p_encrypted_password text, p_name text, p_role text,
  p_email_confirmed boolean,
  p_key text, p_claim uuid, p_response_status smallint, p_response jsonb
)
returns table (out_email_confirmed_at timestamptz, out_onboarding_completed boolean)
language plpgsql volatile security definer set search_path = '' as $$
declare
  v_confirmed_at timestamptz;
  v_onboarding boolean;
begin
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

-- A failed signup gives its key back (only if it still holds it).
create function atomic_signup.release_idempotency_key(p_key text, p_claim uuid)
returns void
language sql volatile security definer set search_path = '' as $$
  delete from atomic_signup.idempotency_keys t
  where t.key = p_key and t.claim = p_claim and t.state = 'in_progress'
$$;

-- Deletes expired keys; returns how many.
create function atomic_signup.purge_idempotency_keys()
returns bigint
language sql volatile security definer set search_path = '' as $$
  with gone as (
    delete from atomic_signup.idempotency_keys t where t.expires_at <= now() returning 1
  )
  select count(*) from gone
$$;

revoke all on table atomic_signup.idempotency_keys from public;
revoke all on function atomic_signup.claim_idempotency_key(text, bytea, uuid, interval, interval) from public;
revoke all on function atomic_signup.create_user_idempotent(uuid, text, text, text, text, boolean, text, uuid, smallint, jsonb) from public;
revoke all on function atomic_signup.release_idempotency_key(text, uuid) from public;
revoke all on function atomic_signup.purge_idempotency_keys() from public;
grant execute on function atomic_signup.claim_idempotency_key(text, bytea, uuid, interval, interval) to atomic_signup_service;
grant execute on function atomic_signup.create_user_idempotent(uuid, text, text, text, text, boolean, text, uuid, smallint, jsonb) to atomic_signup_service;
grant execute on function atomic_signup.release_idempotency_key(text, uuid) to atomic_signup_service;
grant execute on function atomic_signup.purge_idempotency_keys() to atomic_signup_service;
