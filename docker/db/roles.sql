-- Mounted by docker-compose.yml into supabase/postgres' first-start init scripts
-- (/docker-entrypoint-initdb.d/init-scripts/), after the image has created its roles, as
-- Supabase's own docker/volumes/db/roles.sql does. The image creates supabase_auth_admin
-- without a usable password; GoTrue logs in as it, with the same password as postgres
-- (POSTGRES_PASSWORD, which the image's migrate.sh exports as PGPASSWORD).
-- Only GoTrue's role is set here: this stack runs no PostgREST, Storage or pooler.
\set pgpass `echo "$PGPASSWORD"`

ALTER USER supabase_auth_admin WITH PASSWORD :'pgpass';
