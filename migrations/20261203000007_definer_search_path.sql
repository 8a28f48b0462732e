-- Every SECURITY DEFINER function pins search_path = pg_catalog, pg_temp.
--
-- With search_path = '' Postgres still looks up type and table names in the caller's temporary
-- schema (pg_temp) first. A caller holding only atomic_signup_service could create
-- `pg_temp.jsonb` (a domain whose CHECK calls its own function) and have a definer function run
-- that code as the function's owner. Naming pg_temp explicitly and last makes pg_catalog win for
-- every built-in type, as the Postgres documentation on writing SECURITY DEFINER functions says.
-- (The bodies already name their tables with a schema.)
alter function atomic_signup.create_user(uuid, text, text, text, text, boolean)
  set search_path = pg_catalog, pg_temp;
alter function atomic_signup.find_profile(uuid)
  set search_path = pg_catalog, pg_temp;
alter function atomic_signup.find_profile_by_email(text)
  set search_path = pg_catalog, pg_temp;
alter function atomic_signup.claim_confirmation()
  set search_path = pg_catalog, pg_temp;
alter function atomic_signup.claim_idempotency_key(text, bytea, uuid, interval, interval)
  set search_path = pg_catalog, pg_temp;
alter function atomic_signup.create_user_idempotent(uuid, text, text, text, text, boolean, text, uuid, smallint, jsonb)
  set search_path = pg_catalog, pg_temp;
alter function atomic_signup.release_idempotency_key(text, uuid)
  set search_path = pg_catalog, pg_temp;
alter function atomic_signup.purge_idempotency_keys()
  set search_path = pg_catalog, pg_temp;
-- Not a definer function, but pinned the same way for good measure.
alter function atomic_signup.touch_updated_at()
  set search_path = pg_catalog, pg_temp;

-- Least privilege: the service signs up only through create_user_idempotent (which calls
-- create_user as its owner). A direct call of create_user would skip the Idempotency-Key logic.
revoke execute on function atomic_signup.create_user(uuid, text, text, text, text, boolean)
  from atomic_signup_service;
