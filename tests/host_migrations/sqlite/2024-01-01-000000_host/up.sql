-- A host application's first migration: tables of its own whose names
-- simdb's concepts share.
CREATE TABLE experiments (id INTEGER PRIMARY KEY NOT NULL, title TEXT NOT NULL);
CREATE TABLE agents (id INTEGER PRIMARY KEY NOT NULL, login TEXT NOT NULL);
CREATE TABLE events (id INTEGER PRIMARY KEY NOT NULL, what TEXT NOT NULL);
INSERT INTO experiments (title) VALUES ('host experiment');
INSERT INTO agents (login) VALUES ('alice');
INSERT INTO events (what) VALUES ('signup');
