-- pgbench script: the SQL transaction the server runs for
--   { users(first: 20) { edges { node { id email displayName } } pageInfo { ... } } }
-- (server/src/db/tx.rs opens it, server/src/graphql/users.rs reads the page). sqlx sends
-- both SELECTs as prepared statements, hence `pgbench -M prepared` (it also prepares BEGIN
-- and COMMIT, which sqlx sends as simple queries).
-- A random seeded user n in 1..20000 per transaction; ids as in seed.sql. pgbench cannot
-- hold uuids in variables, so they are computed in SQL (md5 costs PostgreSQL a few percent
-- more CPU than the server's ready-made uuids: the ceiling is, if anything, a bit low).
-- The LIMIT is a parameter, as sea-orm sends it (`LIMIT $2`).
\set n random(1, 20000)
\set c :n % 2 + 1
\set page 21
BEGIN;
SELECT app.begin_request(md5('bench-user-' || :n::text)::uuid, md5('bench-company-' || :c::text)::uuid, 'member'::text, true) AS ok;
SELECT "users"."id", "users"."company_id", "users"."email", "users"."password_hash", "users"."display_name", "users"."role", "users"."attributes", "users"."is_active", "users"."created_at", "users"."updated_at", "users"."last_active_at" FROM "users" WHERE "users"."company_id" = md5('bench-company-' || :c::text)::uuid ORDER BY "users"."id" ASC LIMIT :page;
COMMIT;
