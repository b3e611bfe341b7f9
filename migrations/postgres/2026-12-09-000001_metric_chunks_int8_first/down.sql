-- The order of a table's columns is invisible to every release of simdb
-- (each statement names its columns): nothing to undo.
SELECT 1;
