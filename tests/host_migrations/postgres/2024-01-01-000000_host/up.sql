-- A host application's first migration: tables of its own whose names
-- simdb's concepts share.
CREATE TABLE experiments (id SERIAL PRIMARY KEY, title TEXT NOT NULL);
CREATE TABLE agents (id SERIAL PRIMARY KEY, login TEXT NOT NULL);
CREATE TABLE events (id SERIAL PRIMARY KEY, what TEXT NOT NULL);
INSERT INTO experiments (title) VALUES ('host experiment');
INSERT INTO agents (login) VALUES ('alice');
INSERT INTO events (what) VALUES ('signup');
