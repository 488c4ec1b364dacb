DROP TABLE transitions;
DROP TABLE resources;
DROP TABLE events;
