CREATE TABLE outbox_events (
    event_id     uuid        PRIMARY KEY,
    received_at  timestamptz NOT NULL
);
INSERT INTO outbox_events (event_id, received_at)
    SELECT DISTINCT unnest(event_ids), received_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_events RENAME TO outbox;
ALTER INDEX outbox_events_pkey RENAME TO outbox_pkey;
