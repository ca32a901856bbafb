-- The audience views (users, friendships and the audience bitmaps): security barriers of
-- app_profiles, and a blocked pair never reads each other.
-- Re-applied as a whole after the versioned migrations whenever a file of migration/sql/current/
-- changes (see migration/src/current.rs): every statement must be re-runnable and leave the
-- same catalog however often it runs.

CREATE OR REPLACE VIEW audience_users_admin WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.current_role()) = 'admin'
  AND (SELECT app.may('audience', 'read'));
ALTER VIEW audience_users_admin OWNER TO app_profiles;
REVOKE ALL ON audience_users_admin FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_users_admin TO app_user;

CREATE OR REPLACE VIEW audience_users WITH (security_barrier = true) AS
SELECT u.id, u.company_id, u.email, u.role, u.attributes, u.is_active,
       u.created_at, u.updated_at, u.last_active_at
FROM users u
WHERE u.company_id = (SELECT app.current_company_id())
  AND (SELECT app.may('audience', 'read'))
  AND (u.id = (SELECT app.current_user_id())
       OR (u.profile_visibility = 'company' AND u.visible_attributes IS NULL
           AND NOT EXISTS (SELECT 1 FROM friendships f
                           WHERE f.company_id = u.company_id AND f.status = 'blocked'
                             AND f.user_a = LEAST(u.id, (SELECT app.current_user_id()))
                             AND f.user_b = GREATEST(u.id, (SELECT app.current_user_id())))));
ALTER VIEW audience_users OWNER TO app_profiles;
REVOKE ALL ON audience_users FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_users TO app_user;

-- The bitmaps of audience counts (audience_bits), masked to the people the caller may segment,
-- as the two views above draw them: admins the whole company; anyone else those who share their
-- whole profile with the company (`#shares`), less both members of a blocked pair, plus
-- themselves. A row shows only when some of those people hold its term, so no term is seen that
-- only others hold.
CREATE OR REPLACE VIEW audience_bitmaps WITH (security_barrier = true) AS
SELECT b.company_id, b.term, b.seg, b.bits & m.bits AS bits
FROM audience_bits b
JOIN (
    SELECT e.seg,
           CASE WHEN (SELECT app.current_role()) = 'admin' THEN e.bits
                ELSE (COALESCE(s.bits, B'0'::bit(1024)) & ~COALESCE(k.bits, B'0'::bit(1024)))
                     | (e.bits & COALESCE(me.bits, B'0'::bit(1024)))
           END AS bits
    FROM audience_bits e
    LEFT JOIN (SELECT h.seg, h.bits FROM audience_bits h
               WHERE h.company_id = (SELECT app.current_company_id()) AND h.term = '#shares'
                 AND (SELECT app.current_role()) IS DISTINCT FROM 'admin') s ON s.seg = e.seg
    LEFT JOIN (SELECT p.member / 1024 AS seg, bit_or(set_bit(B'0'::bit(1024), p.member % 1024, 1)) AS bits
               FROM audience_members p
               WHERE p.company_id = (SELECT app.current_company_id())
                 AND p.user_id IN (SELECT CASE WHEN f.user_a = (SELECT app.current_user_id()) THEN f.user_b
                                               ELSE f.user_a END
                                   FROM friendships f
                                   WHERE f.company_id = (SELECT app.current_company_id())
                                     AND f.status = 'blocked'
                                     AND (SELECT app.current_user_id()) IN (f.user_a, f.user_b))
               GROUP BY 1) k ON k.seg = e.seg
    LEFT JOIN (SELECT p.member / 1024 AS seg, set_bit(B'0'::bit(1024), p.member % 1024, 1) AS bits
               FROM audience_members p
               WHERE p.company_id = (SELECT app.current_company_id())
                 AND p.user_id = (SELECT app.current_user_id())) me ON me.seg = e.seg
    WHERE e.company_id = (SELECT app.current_company_id()) AND e.term = '*'
) m ON m.seg = b.seg
WHERE b.company_id = (SELECT app.current_company_id())
  AND (SELECT app.may('audience', 'read'))
  AND (b.bits & m.bits) <> B'0'::bit(1024);
ALTER VIEW audience_bitmaps OWNER TO app_profiles;
REVOKE ALL ON audience_bitmaps FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth;
GRANT SELECT ON audience_bitmaps TO app_user;
