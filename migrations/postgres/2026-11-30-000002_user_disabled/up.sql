-- A disabled user cannot sign in, and their sessions are deleted (`user disable`).
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP;
