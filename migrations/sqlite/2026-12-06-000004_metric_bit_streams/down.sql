-- Chunks already written as bit streams stay as they are: going down past
-- this migration leaves a database only this release or a later one reads.
SELECT 1;
