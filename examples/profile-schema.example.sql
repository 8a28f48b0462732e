-- The columns examples/profile-schema.example.json declares, added to public.profiles.
-- Run as the owner (like the migrations), then `atomic-signup migrate` with
-- PROFILE_SCHEMA_PATH=examples/profile-schema.example.json.
alter table public.profiles
  add column username varchar(20) unique,
  add column plan text not null default 'free' check (plan in ('free', 'pro')),
  add column age integer check (age between 13 and 130),
  add column marketing_opt_in boolean not null default false,
  add column date_of_birth date;
