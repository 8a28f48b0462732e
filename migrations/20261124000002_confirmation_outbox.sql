-- Transactional outbox for confirmation emails (REQUIRE_EMAIL_CONFIRMATION=true).
--
-- GoTrue sends no email for a user inserted by SQL; its POST /resend (type signup) does. The
-- signup function inserts one row here in the same transaction as the user, so a committed signup
-- always has its row and a rolled-back one never does. The service's outbox worker claims rows
-- with FOR UPDATE SKIP LOCKED (several replicas may run), calls /resend, and marks them sent, or
-- retries with backoff until OUTBOX_MAX_ATTEMPTS, then marks them failed.
--
-- Lives in the service's private schema, which PostgREST does not expose.
create table atomic_signup.confirmation_outbox (
  id bigint generated always as identity primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
  attempts integer not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_error text,
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  failed_at timestamptz
);
comment on table atomic_signup.confirmation_outbox is
  'atomic-signup: confirmation emails to send through GoTrue /resend; one row per signup that needs confirmation.';

-- The worker's queue: due pending rows, oldest first.
create index confirmation_outbox_due_idx on atomic_signup.confirmation_outbox (next_attempt_at)
  where status = 'pending';
create index confirmation_outbox_user_idx on atomic_signup.confirmation_outbox (user_id);

revoke all on table atomic_signup.confirmation_outbox from public;
