
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS companies;
-- Without CASCADE: an extension something else still uses stays, and the down fails instead.
DROP EXTENSION IF EXISTS pg_trgm;
