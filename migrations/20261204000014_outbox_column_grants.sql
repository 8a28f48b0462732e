-- The service role may update only the outbox columns its worker changes.
--
-- With UPDATE on the whole table, a holder of the service's role could point a pending row at
-- another user (`set user_id = …`) and have the worker mail that user a confirmation link. The
-- worker changes only the delivery state: status, attempts, next_attempt_at, last_error,
-- sent_at, failed_at.
revoke update on table atomic_signup.confirmation_outbox from atomic_signup_service;
grant update (status, attempts, next_attempt_at, last_error, sent_at, failed_at)
  on table atomic_signup.confirmation_outbox to atomic_signup_service;
