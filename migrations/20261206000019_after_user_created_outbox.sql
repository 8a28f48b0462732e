-- GoTrue's after_user_created auth hook, told through a transactional outbox.
--
-- GoTrue calls the hook after its commit and answers 500 when the call fails, although the user
-- exists; a crash between the commit and the call loses the notice. Here the signup transaction
-- (with HOOK_AFTER_USER_CREATED_ENABLED=true) also calls enqueue_after_user_created, which writes
-- one row with the hook's input: the user as committed, and a webhook id fixed for that user (the
-- `webhook-id` of every delivery, and the input's metadata.uuid), so receivers can drop
-- duplicates. The service's hook worker claims due rows with FOR UPDATE SKIP LOCKED (several
-- replicas may run), calls the hook, and marks the row sent, or retries with backoff until
-- OUTBOX_MAX_ATTEMPTS, then marks it failed.
--
-- The service's role can neither insert rows nor change their user or input: the only way in is
-- enqueue_after_user_created, which accepts only a user that its own transaction has just
-- created (created_at = now(), the transaction's start: create_user sets both from now()), once.
-- So a holder of that role cannot have the hook told about a user twice, or about a user that
-- was not created there, or with an input of its choosing.
create table atomic_signup.hook_outbox (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  hook text not null check (hook in ('after-user-created')),
  webhook_id uuid not null unique,
  input jsonb not null,
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_error text,
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  failed_at timestamptz,
  unique (user_id, hook)
);
comment on table atomic_signup.hook_outbox is
  'atomic-signup: after_user_created hook calls to make; one row per user created with the hook enabled.';

create index hook_outbox_due_idx on atomic_signup.hook_outbox (next_attempt_at)
  where status = 'pending';

revoke all on table atomic_signup.hook_outbox from public;
grant select on table atomic_signup.hook_outbox to atomic_signup_service;
grant update (status, attempts, next_attempt_at, last_error, sent_at, failed_at)
  on table atomic_signup.hook_outbox to atomic_signup_service;

-- The hook's input for a user created in the calling transaction, as GoTrue v2.196.0 sends it
-- (internal/hooks/v0hooks: {"metadata": {"uuid", "time", "name", "ip_address"}, "user":
-- models.User}); p_ip_address is the client's address, or NULL.
create function atomic_signup.enqueue_after_user_created(p_user_id uuid, p_ip_address text)
returns void
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
  v_webhook_id uuid := gen_random_uuid();
  v_metadata jsonb;
  v_user jsonb;
begin
  if p_ip_address is not null
     and (length(p_ip_address) > 45 or p_ip_address !~ '^[0-9A-Fa-f.:]+$') then
    raise exception 'the ip address is not an IP address' using errcode = '22023';
  end if;
  if p_ip_address is not null then
    perform p_ip_address::inet;  -- raises 22P02 when malformed
  end if;

  select jsonb_build_object(
           'id', u.id,
           'aud', u.aud,
           'role', u.role,
           'email', u.email,
           'email_confirmed_at', u.email_confirmed_at,
           'phone', coalesce(u.phone, ''),
           'confirmed_at', u.confirmed_at,
           'app_metadata', u.raw_app_meta_data,
           'user_metadata', u.raw_user_meta_data,
           'identities', coalesce((
             select jsonb_agg(jsonb_build_object(
                      'identity_id', i.id,
                      'id', i.provider_id,
                      'user_id', i.user_id,
                      'identity_data', i.identity_data,
                      'provider', i.provider,
                      'last_sign_in_at', i.last_sign_in_at,
                      'created_at', i.created_at,
                      'updated_at', i.updated_at,
                      'email', i.email) order by i.created_at)
             from auth.identities i where i.user_id = u.id), '[]'::jsonb),
           'created_at', u.created_at,
           'updated_at', u.updated_at,
           'is_anonymous', u.is_anonymous)
    into v_user
    from auth.users u
   where u.id = p_user_id and u.created_at = now();
  if v_user is null then
    raise exception 'no user % was created by this transaction', p_user_id using errcode = '22023';
  end if;

  v_metadata := jsonb_build_object('uuid', v_webhook_id, 'time', now(),
                                   'name', 'after-user-created')
                || case when p_ip_address is null then '{}'::jsonb
                        else jsonb_build_object('ip_address', p_ip_address) end;

  insert into atomic_signup.hook_outbox (user_id, hook, webhook_id, input, created_at, next_attempt_at)
  values (p_user_id, 'after-user-created', v_webhook_id,
          jsonb_build_object('metadata', v_metadata, 'user', v_user), now(), now());
end
$$;

revoke all on function atomic_signup.enqueue_after_user_created(uuid, text) from public;
grant execute on function atomic_signup.enqueue_after_user_created(uuid, text)
  to atomic_signup_service;
