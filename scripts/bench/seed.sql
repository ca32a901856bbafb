-- Bench data: two companies with 10,000 users each, and saved presets. Ids are derived from the user number n
-- (1..20000) so the token minter and the pgbench script can compute them on their own:
--   company c (1 or 2):  md5('bench-company-' || c)::uuid
--   user n:              md5('bench-user-' || n)::uuid, in company (n % 2) + 1
--   session of user n:   md5('bench-session-' || n)::uuid (when the schema has sessions)
-- Run as the superuser (which bypasses Row Level Security).
\set ON_ERROR_STOP on

BEGIN;

INSERT INTO companies (id, name)
SELECT md5('bench-company-' || c)::uuid, 'Bench company ' || c
FROM generate_series(1, 2) AS c;

INSERT INTO users (id, company_id, email, password_hash, display_name, role, attributes,
                   is_active, created_at, updated_at, last_active_at)
SELECT md5('bench-user-' || n)::uuid,
       md5('bench-company-' || (n % 2 + 1))::uuid,
       'user' || n || '@bench' || (n % 2 + 1) || '.example',
       -- Shaped like an argon2id PHC string, so rows have their real width.
       '$argon2id$v=19$m=19456,t=2,p=1$' || left(md5('salt-' || n), 22) || '$'
           || md5('hash-a-' || n) || left(md5('hash-b-' || n), 11),
       'Bench User ' || n,
       'member',
       jsonb_build_object(
           'plan', (ARRAY['free', 'pro', 'enterprise'])[n % 3 + 1],
           'country', (ARRAY['FR', 'DE', 'US', 'JP', 'BR', 'IN'])[n % 6 + 1],
           'seats', n % 50,
           'tags', jsonb_build_array('bench', 'cohort-' || (n % 12)),
           'newsletter', n % 4 = 0),
       true,
       now() - n * interval '1 minute',
       now() - n * interval '10 seconds',
       CASE WHEN n % 5 = 0 THEN NULL ELSE now() - (n % 1000) * interval '1 hour' END
FROM generate_series(1, 20000) AS n;

-- Access tokens name a session, which app.begin_request requires to be live once the schema
-- has sessions: one per user, valid for a day.
SELECT to_regclass('public.sessions') IS NOT NULL AS has_sessions \gset
\if :has_sessions
INSERT INTO sessions (id, company_id, user_id, expires_at, absolute_expires_at, user_agent,
                      ip, fingerprint_hash)
SELECT md5('bench-session-' || n)::uuid,
       md5('bench-company-' || (n % 2 + 1))::uuid,
       md5('bench-user-' || n)::uuid,
       now() + interval '1 day',
       now() + interval '1 day',
       'bench',
       '127.0.0.1',
       md5('bench-fingerprint-' || n)
FROM generate_series(1, 20000) AS n;
\endif

-- Saved audience filters, for the presets page: per company 60 shared with the company (owned
-- by users 1..120) and 340 private ones (one each for users 121..800). A member's page shows
-- the company's shared presets and their own, by name.
INSERT INTO presets (id, company_id, owner_id, name, description, filter, visibility,
                     created_at, updated_at)
SELECT md5('bench-preset-' || k)::uuid,
       md5('bench-company-' || (k % 2 + 1))::uuid,
       md5('bench-user-' || k)::uuid,
       CASE WHEN k <= 120 THEN 'Segment ' || lpad(k::text, 3, '0') ELSE 'Private ' || k END,
       'Users on the ' || (ARRAY['free', 'pro', 'enterprise'])[k % 3 + 1] || ' plan in '
           || (ARRAY['FR', 'DE', 'US', 'JP', 'BR', 'IN'])[k % 6 + 1],
       jsonb_build_object('include', jsonb_build_object('all', jsonb_build_array(
           jsonb_build_object('field', 'plan', 'op', 'eq',
                              'value', (ARRAY['free', 'pro', 'enterprise'])[k % 3 + 1]),
           jsonb_build_object('field', 'country', 'op', 'eq',
                              'value', (ARRAY['FR', 'DE', 'US', 'JP', 'BR', 'IN'])[k % 6 + 1])))),
       CASE WHEN k <= 120 THEN 'company' ELSE 'private' END,
       now() - k * interval '1 hour',
       now() - k * interval '1 minute'
FROM generate_series(1, 800) AS k;

COMMIT;

-- Fresh statistics and visibility map / hint bits, as a long-lived table would have them.
VACUUM (ANALYZE);

SELECT c.name, count(*) AS users
FROM users u JOIN companies c ON c.id = u.company_id
GROUP BY c.name ORDER BY c.name;

SELECT visibility, count(*) AS presets FROM presets GROUP BY visibility ORDER BY visibility;
