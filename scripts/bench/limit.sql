-- The physical limit of a page of 20 users (scripts/bench.sh), for a random seeded user :n (ids
-- as in seed.sql): the least any request transaction does, in one round trip. The role and the
-- variables the policies read (what app.begin_request sets; app.grants as app.request_grants
-- gives it for a member, written with `/` for `:`, which pgbench would take for variables), 21 rows (a page and the look-ahead
-- for hasNextPage) by the listing index under Row Level Security, commit: pipelined, so the five
-- statements go in one write and their answers come back in one read, prepared (-M prepared),
-- with a literal LIMIT.
\set n random(1, 20000)
\set c :n % 2 + 1
\startpipeline
BEGIN;
SET LOCAL ROLE app_user;
SELECT set_config('app.user_id', md5('bench-user-' || :n::text)::uuid::text, true), set_config('app.company_id', md5('bench-company-' || :c::text)::uuid::text, true), set_config('app.role', 'member', true), set_config('app.grants', replace(',activity/manage,activity_kind/read,audience/read,company/read,conversation/manage,friendship/manage,message/manage,preset/manage,session/manage,user/read,user/update,', '/', chr(58)), true);
SELECT id, display_name, created_at FROM users WHERE company_id = md5('bench-company-' || :c::text)::uuid ORDER BY created_at, id LIMIT 21;
COMMIT;
\endpipeline
