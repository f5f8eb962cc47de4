-- Usernames and emails are unique by a normalised form (NFKC, Unicode case
-- folding, NFKC: autodocs_domain::user::IdentityKey), kept in its own column
-- because SQLite's lower() knows only ASCII: `Ärger` and `ärger` were two
-- accounts. The application writes the keys with every insert and update;
-- `Database::migrate` fills them in for rows written before this migration
-- (SQL cannot compute them). NULL (not yet filled, or an empty email) is
-- never equal to anything, so the unique indexes allow any number of them.
ALTER TABLE auth_user ADD COLUMN username_key TEXT NULL;
ALTER TABLE auth_user ADD COLUMN email_key TEXT NULL;
CREATE UNIQUE INDEX auth_user_username_key_uniq ON auth_user (username_key);
CREATE UNIQUE INDEX auth_user_email_key_uniq ON auth_user (email_key);

-- Equal lower() implies equal keys, so these indexes refuse nothing the key
-- indexes allow, and no query reads them any more.
DROP INDEX auth_user_username_lower_uniq;
DROP INDEX auth_user_email_lower_uniq;
