CREATE UNIQUE INDEX auth_user_username_lower_uniq ON auth_user (lower(username));
CREATE UNIQUE INDEX auth_user_email_lower_uniq ON auth_user (lower(email)) WHERE email <> '';
DROP INDEX auth_user_email_key_uniq;
DROP INDEX auth_user_username_key_uniq;
ALTER TABLE auth_user DROP COLUMN email_key;
ALTER TABLE auth_user DROP COLUMN username_key;
