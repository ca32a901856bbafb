-- Invite links: a link (a one-time-per-use token, stored hashed) anyone may sign up with into
-- the company, with the link's role, until it expires, is revoked or has been used max_uses
-- times; uses are counted atomically by app.accept_invite_link.

GRANT CREATE ON SCHEMA app TO app_auth;

CREATE TABLE IF NOT EXISTS invite_links (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_id  uuid NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    role        text NOT NULL,
    token_hash  text NOT NULL UNIQUE,
    max_uses    integer NOT NULL,
    uses        integer NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_by  uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invite_links_max_uses_check CHECK (max_uses BETWEEN 1 AND 10000),
    CONSTRAINT invite_links_uses_check CHECK (uses BETWEEN 0 AND max_uses)
);
CREATE INDEX IF NOT EXISTS invite_links_company_idx ON invite_links (company_id, created_at);

ALTER TABLE invite_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE invite_links FORCE ROW LEVEL SECURITY;
REVOKE ALL ON invite_links FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_auth, app_profiles;
GRANT SELECT, UPDATE ON invite_links TO app_auth;
GRANT SELECT, INSERT ON invite_links TO app_user;
GRANT UPDATE (revoked_at) ON invite_links TO app_user;

DROP POLICY IF EXISTS invite_links_definer ON invite_links;
CREATE POLICY invite_links_definer ON invite_links FOR ALL TO app_auth USING (true) WITH CHECK (true);

DROP POLICY IF EXISTS invite_links_select ON invite_links;
CREATE POLICY invite_links_select ON invite_links FOR SELECT TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'read')));

DROP POLICY IF EXISTS invite_links_insert ON invite_links;
CREATE POLICY invite_links_insert ON invite_links FOR INSERT TO app_user
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'create'))
                AND created_by = (SELECT app.current_user_id()) AND uses = 0 AND revoked_at IS NULL);

DROP POLICY IF EXISTS invite_links_revoke ON invite_links;
CREATE POLICY invite_links_revoke ON invite_links FOR UPDATE TO app_user
    USING (company_id = (SELECT app.current_company_id()) AND (SELECT app.may('invitation', 'delete')))
    WITH CHECK (company_id = (SELECT app.current_company_id()) AND revoked_at IS NOT NULL);

CREATE OR REPLACE TRIGGER invite_links_touch_updated_at BEFORE UPDATE ON invite_links
    FOR EACH ROW EXECUTE FUNCTION app.touch_updated_at();

-- Signs up user p_user into the company of a live invite link, with the link's role, counting
-- one use: the row lock of the UPDATE serialises concurrent uses, so they never exceed max_uses,
-- and a sign-up that fails (a taken address) counts none. The user, or no row when the link is
-- unknown, revoked, expired or used up.
CREATE OR REPLACE FUNCTION app.accept_invite_link(p_token_hash text, p_user uuid, p_email text,
                                                  p_password_hash text, p_display_name text)
    RETURNS TABLE (user_id uuid, company_id uuid, role text)
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp
    AS $$
DECLARE l invite_links%ROWTYPE;
BEGIN
    UPDATE invite_links SET uses = uses + 1
     WHERE token_hash = p_token_hash AND revoked_at IS NULL AND expires_at > now() AND uses < max_uses
    RETURNING * INTO l;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    INSERT INTO users (id, company_id, email, password_hash, display_name, role)
        VALUES (p_user, l.company_id, btrim(p_email), p_password_hash, btrim(p_display_name), l.role);
    RETURN QUERY SELECT p_user, l.company_id, l.role;
END
$$;
ALTER FUNCTION app.accept_invite_link(text, uuid, text, text, text) OWNER TO app_auth;
REVOKE ALL ON FUNCTION app.accept_invite_link(text, uuid, text, text, text) FROM PUBLIC, app_authenticator, app_user, app_anon, app_worker, app_profiles;
GRANT EXECUTE ON FUNCTION app.accept_invite_link(text, uuid, text, text, text) TO app_anon;

REVOKE CREATE ON SCHEMA app FROM app_auth;
