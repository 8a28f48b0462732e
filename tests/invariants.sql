-- The invariant checker: every count must be 0 after any test, whatever was broken on purpose.
-- "A signup is either fully there or not there at all."
select
  -- auth users (as this service writes them: the name in user metadata, the role in app
  -- metadata, or in user metadata before migration 20261203000011) without profile
  (select count(*) from auth.users u
    where u.raw_user_meta_data ? 'name'
      and (u.raw_app_meta_data ? 'role' or u.raw_user_meta_data ? 'role')
      and not exists (select 1 from public.profiles p where p.id = u.id)) as users_without_profile,
  -- profiles without an auth user
  (select count(*) from public.profiles p
    where not exists (select 1 from auth.users u where u.id = p.id)) as profiles_without_user,
  -- email users without their email identity (provider_id = the user id as text); users of
  -- another provider (OAuth, as GoTrue creates them) have that provider's identity instead
  (select count(*) from auth.users u
    where coalesce(u.raw_app_meta_data ->> 'provider', 'email') = 'email'
      and not exists (select 1 from auth.identities i
                      where i.user_id = u.id and i.provider = 'email' and i.provider_id = u.id::text))
    as users_without_identity,
  -- identities without a user
  (select count(*) from auth.identities i
    where not exists (select 1 from auth.users u where u.id = i.user_id)) as identities_without_user,
  -- outbox rows without a user
  (select count(*) from atomic_signup.confirmation_outbox o
    where not exists (select 1 from auth.users u where u.id = o.user_id)) as outbox_without_user,
  -- after_user_created calls whose input is not about their user, or whose id is not theirs
  (select count(*) from atomic_signup.hook_outbox h
    where h.input -> 'user' ->> 'id' is distinct from h.user_id::text
       or h.input -> 'metadata' ->> 'uuid' is distinct from h.webhook_id::text) as hook_calls_not_theirs,
  -- Idempotency-Keys whose stored 201 names a user that does not exist
  (select count(*) from atomic_signup.idempotency_keys k
    where k.state = 'completed' and k.user_id is not null
      and not exists (select 1 from auth.users u where u.id = k.user_id)) as keys_without_user
