-- Tokens get an optional name, and the time they were last used (kept to the minute, see
-- store::users::org_for_token), for `token list`.
ALTER TABLE api_tokens ADD COLUMN name TEXT;
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMP;
