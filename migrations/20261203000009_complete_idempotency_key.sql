-- CONCEAL_EXISTING_EMAILS=true: a signup for an email that is already registered must look like
-- a new one on every retry with the same Idempotency-Key, so its key is completed with the same
-- concealed answer (and replayed the same way), in a statement of its own after the signup
-- transaction rolled back. user_id stays null: no user was created.
create function atomic_signup.complete_idempotency_key(
  p_key text, p_claim uuid, p_response_status smallint, p_response jsonb
)
returns boolean
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp
as $$
begin
  update atomic_signup.idempotency_keys t
  set state = 'completed', claim = null, locked_until = null, user_id = null,
      response_status = p_response_status, response_body = p_response
  where t.key = p_key and t.claim = p_claim and t.state = 'in_progress';
  return found;  -- false: the request no longer held its key
end
$$;
revoke all on function atomic_signup.complete_idempotency_key(text, uuid, smallint, jsonb) from public;
grant execute on function atomic_signup.complete_idempotency_key(text, uuid, smallint, jsonb)
  to atomic_signup_service;
