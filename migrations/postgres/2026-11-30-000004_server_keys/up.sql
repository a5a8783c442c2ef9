-- Keys every server of the database shares (the sign-in form's CSRF key), made on first start.
CREATE TABLE server_keys (
    name TEXT PRIMARY KEY NOT NULL,
    key_hex TEXT NOT NULL
);
