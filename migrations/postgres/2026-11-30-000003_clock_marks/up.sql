-- When the real clock last ran the server on this database: a fixed clock (CREDITMETER_NOW, for
-- tests and demos) then refuses to close periods or write usage here unless told to.
CREATE TABLE clock_marks (
    name TEXT PRIMARY KEY NOT NULL,
    at TIMESTAMP NOT NULL
);
