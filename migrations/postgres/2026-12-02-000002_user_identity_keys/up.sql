-- Usernames and emails are unique by a normalised form (NFKC, Unicode case
-- folding, NFKC: autodocs_domain::user::IdentityKey), kept in its own column
-- so that both databases compare alike (SQLite's lower() knows only ASCII;
-- PostgreSQL's depends on the collation and does no NFKC). The application
-- writes the keys with every insert and update; `Database::migrate` fills
-- them in for rows written before this migration. NULL (not yet filled, or
-- an empty email) is never equal to anything, so the unique indexes allow
-- any number of them. TEXT: a key can be longer than its value (ß → ss).
ALTER TABLE auth_user ADD COLUMN username_key TEXT NULL;
ALTER TABLE auth_user ADD COLUMN email_key TEXT NULL;
CREATE UNIQUE INDEX auth_user_username_key_uniq ON auth_user (username_key);
CREATE UNIQUE INDEX auth_user_email_key_uniq ON auth_user (email_key);

-- No query reads these any more; the key indexes take their place.
DROP INDEX auth_user_username_lower_uniq;
DROP INDEX auth_user_email_lower_uniq;
