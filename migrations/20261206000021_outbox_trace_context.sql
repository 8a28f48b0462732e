-- The signup's trace, kept with the rows it queues: a confirmation mail's and an
-- after_user_created call's delivery span links back to the signup that caused it.
--
-- With tracing on, the service sets atomic_signup.traceparent (a W3C traceparent, local to the
-- signup's transaction) before the signup statement; the column's default reads it when
-- create_user (or enqueue_after_user_created) inserts the row. Without it, the column is NULL.
-- The service's role may not update it (its UPDATE grant names only the delivery columns); a
-- value that is not a traceparent is refused, so a setting of any other shape cannot get in.
alter table atomic_signup.confirmation_outbox
  add column trace_context text
    default nullif(pg_catalog.current_setting('atomic_signup.traceparent', true), '')
    check (trace_context is null
           or trace_context ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');

alter table atomic_signup.hook_outbox
  add column trace_context text
    default nullif(pg_catalog.current_setting('atomic_signup.traceparent', true), '')
    check (trace_context is null
           or trace_context ~ '^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$');
