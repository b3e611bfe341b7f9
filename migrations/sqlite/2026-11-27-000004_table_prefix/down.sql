-- The earlier migrations' down scripts use the prefixed names: nothing to undo.
SELECT 1;
