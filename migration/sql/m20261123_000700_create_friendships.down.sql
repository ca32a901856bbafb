
DROP FUNCTION IF EXISTS app.mutual_friend_ids(uuid);
DROP VIEW IF EXISTS user_profiles;
DROP POLICY IF EXISTS users_profiles ON users;
DROP TABLE IF EXISTS friendships;
ALTER TABLE users DROP CONSTRAINT IF EXISTS users_profile_visibility_check;
ALTER TABLE users DROP COLUMN IF EXISTS visible_attributes;
ALTER TABLE users DROP COLUMN IF EXISTS profile_visibility;
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM app_profiles;
