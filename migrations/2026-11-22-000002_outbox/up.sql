-- The outbox gets a narrow table of its own: a row per event committed but not yet
-- confirmed by the broker, inserted with the event and deleted on the confirm. Marking an
-- event published used to rewrite (and row-lock) the wide events row, which both doubled
-- the write cost per webhook and made ingest's confirm wait on the workers' row locks.
-- An event is `received` while its outbox row exists and `published` after. The relay
-- walks it in event_id order: ids are UUIDv7, so that is arrival order without a second index.
CREATE TABLE outbox (
    event_id     uuid        PRIMARY KEY,
    received_at  timestamptz NOT NULL
);

INSERT INTO outbox (event_id, received_at)
    SELECT id, received_at FROM events WHERE state = 'received';
DROP INDEX events_outbox;
ALTER TABLE events DROP COLUMN published_at;
