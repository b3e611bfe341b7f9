DROP TABLE events;
DROP TABLE agents;
DROP TABLE experiments;
