-- One outbox row per group commit instead of one per event. Every accepted webhook used
-- to write an outbox row and its primary-key entry with the event, and delete the row on
-- the broker's confirm: three of the ~10 WAL records an event cost ingest, and a table
-- that churned a dead tuple per event. Now the statement that stores a batch inserts
-- one row holding the ids of the events it stored, and the confirm of the batch deletes
-- that row: a few records per batch, whatever its size.
--
-- `id` is the smallest event id of the batch (UUIDv7: its first arrival), which ingest
-- also knows without reading anything back, so it deletes the row it was handed;
-- `received_at` is the committing statement's `now()`, which is every one of its
-- events' `received_at` as well: an event is `received` (not yet confirmed) while a row
-- with its `received_at` lists its id, found along `outbox_received_at`. The relay walks
-- the rows in id order, as before. `toast_tuple_target` keeps a batch of up to ~500 ids
-- (`ingest.batch_max` defaults to 256) in the row itself instead of the TOAST table.
CREATE TABLE outbox_batches (
    id           uuid        PRIMARY KEY,
    received_at  timestamptz NOT NULL,
    event_ids    uuid[]      NOT NULL
) WITH (toast_tuple_target = 8160);

INSERT INTO outbox_batches (id, received_at, event_ids)
    SELECT event_id, received_at, ARRAY[event_id] FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_batches RENAME TO outbox;
ALTER INDEX outbox_batches_pkey RENAME TO outbox_pkey;
CREATE INDEX outbox_received_at ON outbox (received_at);
