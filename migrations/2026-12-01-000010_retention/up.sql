-- Data lifecycle: storage sized by time and pruned by dropping whole partitions, with
-- exact deduplication in a narrow key table of its own (docs/architecture.md, "Data
-- lifecycle", explains the design). An existing database migrates in place: the wide
-- events table becomes the first payload partition (only its narrow columns are copied
-- out, never the bodies), transitions becomes the first transitions partition, and every
-- stored key goes into the first key generation, so dedup holds across the migration.
--
-- Partitions are named <table>_p<YYYYMMDD> (a UTC day), <table>_legacy (everything
-- before the first day) and dedup_keys_g<N>; diesel.toml keeps them out of schema.rs.

-- 1. The wide table keeps its payload columns and becomes event_payloads_legacy. Its
--    indexes on the columns that move out go now (their names are needed below).
ALTER TABLE events RENAME TO event_payloads_legacy;
ALTER TABLE event_payloads_legacy RENAME CONSTRAINT events_pkey TO event_payloads_legacy_pkey;
ALTER TABLE event_payloads_legacy DROP CONSTRAINT events_source_dedup_key;
DROP INDEX events_source_received_at;
DROP INDEX events_state_received_at;

-- 2. Event rows without their payload, by id range. Ids are UUIDv7, so an id range is a
--    time range and a lookup by id touches one partition. No unique key on
--    (source, dedup_key): a partitioned table's unique index must contain the partition
--    key, so exact dedup lives in dedup_keys below.
CREATE TABLE events (
    id            uuid        NOT NULL,
    source        text        NOT NULL,
    dedup_key     text        NOT NULL,
    resource_key  text,
    status        text,
    state         text        NOT NULL DEFAULT 'received'
                  CONSTRAINT events_state_check
                  CHECK (state IN ('received', 'published', 'processed', 'failed', 'dead')),
    traceparent   text,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);
CREATE INDEX events_source_received_at ON events (source, received_at);
CREATE INDEX events_state_received_at ON events (state, received_at) WHERE state IN ('failed', 'dead');

CREATE TABLE events_legacy (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO events_legacy (id, source, dedup_key, resource_key, status, state, traceparent,
                           attempts, last_error, received_at, processed_at)
    SELECT id, source, dedup_key, resource_key, status, state, traceparent,
           attempts, last_error, received_at, processed_at
    FROM event_payloads_legacy;

-- 3. Dedup keys, by generation. The unique key includes the generation (the partition
--    key), so it is exact within one; the insert path also checks the one generation
--    before the current that can still hold keys inside their horizon, and a generation
--    becomes current only under an ACCESS EXCLUSIVE lock on dedup_generations, which
--    every insert holds in ACCESS SHARE mode: two inserts running at once always agree on
--    the current generation, and the one they check is complete. earlier_event_ids keeps
--    the events of a key received again, within one generation, after its horizon.
CREATE TABLE dedup_generations (
    generation  integer     PRIMARY KEY,
    started_at  timestamptz NOT NULL
);
INSERT INTO dedup_generations (generation, started_at) VALUES (1, now());

CREATE TABLE dedup_keys (
    generation         integer     NOT NULL,
    source             text        NOT NULL,
    dedup_key          text        NOT NULL,
    event_id           uuid        NOT NULL,
    received_at        timestamptz NOT NULL,
    earlier_event_ids  uuid[],
    PRIMARY KEY (source, dedup_key, generation)
) PARTITION BY RANGE (generation);
CREATE TABLE dedup_keys_g1 (LIKE dedup_keys INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO dedup_keys_g1 (generation, source, dedup_key, event_id, received_at)
    SELECT 1, source, dedup_key, id, received_at FROM event_payloads_legacy;
ALTER TABLE dedup_keys ATTACH PARTITION dedup_keys_g1 FOR VALUES FROM (1) TO (2);
-- The next generation's partition always exists a generation ahead of its switch.
CREATE TABLE dedup_keys_g2 PARTITION OF dedup_keys FOR VALUES FROM (2) TO (3);

-- 4. Payloads: the old table without the columns copied out above (dropping a column
--    rewrites nothing). Pruned by dropping partitions, so no body is ever rewritten.
ALTER TABLE event_payloads_legacy
    DROP COLUMN source, DROP COLUMN dedup_key, DROP COLUMN resource_key, DROP COLUMN status,
    DROP COLUMN state, DROP COLUMN traceparent, DROP COLUMN attempts, DROP COLUMN last_error,
    DROP COLUMN received_at, DROP COLUMN processed_at;
CREATE TABLE event_payloads (
    id       uuid  NOT NULL,
    -- [{"name": "...", "value": "..."}] in arrival order; non-UTF-8 values as {"name", "value_base64"}
    headers  jsonb NOT NULL,
    query    text  NOT NULL DEFAULT '',
    body     bytea NOT NULL,
    PRIMARY KEY (id)
) PARTITION BY RANGE (id);

-- 5. The transition log, by time. Its primary key must include the partition key.
ALTER TABLE transitions RENAME TO transitions_legacy;
ALTER TABLE transitions_legacy DROP CONSTRAINT transitions_pkey;
ALTER TABLE transitions_legacy ADD CONSTRAINT transitions_legacy_pkey PRIMARY KEY (id, at);
ALTER INDEX transitions_resource RENAME TO transitions_legacy_resource;
ALTER INDEX transitions_event RENAME TO transitions_legacy_event;
CREATE TABLE transitions (
    id            bigint      NOT NULL DEFAULT nextval('transitions_id_seq'),
    source        text        NOT NULL,
    resource_key  text        NOT NULL,
    event_id      uuid,
    from_status   text,
    to_status     text        NOT NULL,
    outcome       text        NOT NULL
                  -- the legacy partition's name: attaching it needs the same constraint
                  CONSTRAINT transitions_outcome_check
                  CHECK (outcome IN ('applied', 'unchanged', 'rejected_downgrade', 'rejected_terminal', 'forced')),
    reason        text,
    actor         text,
    at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE INDEX transitions_resource ON transitions (source, resource_key, id);
CREATE INDEX transitions_event ON transitions (event_id);
-- The sequence must not go with the legacy partition when it is dropped.
ALTER SEQUENCE transitions_id_seq OWNED BY transitions.id;

-- 6. The legacy partitions hold everything up to the end of today (UTC), or of the day
--    of the newest row if that is later; daily partitions follow, four days of them
--    (the maintenance pass keeps creating them ahead).
DO $$
DECLARE
    newest_id  uuid;
    bound      timestamptz;
    day        timestamptz;
    hex        text;
    low        text;
    high       text;
    tbl        text;
BEGIN
    SELECT id INTO newest_id FROM events_legacy ORDER BY id DESC LIMIT 1;
    bound := greatest(
        date_trunc('day', now(), 'UTC') + interval '1 day',
        date_trunc('day', to_timestamp(
            ('x' || substr(replace(newest_id::text, '-', ''), 1, 12))::bit(48)::bigint / 1000.0), 'UTC')
            + interval '1 day',
        (SELECT date_trunc('day', max(at), 'UTC') + interval '1 day' FROM transitions_legacy));
    hex := lpad(to_hex((extract(epoch FROM bound) * 1000)::bigint), 12, '0');
    high := substr(hex, 1, 8) || '-' || substr(hex, 9, 4) || '-0000-0000-000000000000';
    EXECUTE format('ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO (%L)', high);
    EXECUTE format('ALTER TABLE event_payloads ATTACH PARTITION event_payloads_legacy FOR VALUES FROM (MINVALUE) TO (%L)', high);
    EXECUTE format('ALTER TABLE transitions ATTACH PARTITION transitions_legacy FOR VALUES FROM (MINVALUE) TO (%L)', bound);
    FOR i IN 0..3 LOOP
        day := bound + i * interval '1 day';
        low := high;
        hex := lpad(to_hex((extract(epoch FROM day + interval '1 day') * 1000)::bigint), 12, '0');
        high := substr(hex, 1, 8) || '-' || substr(hex, 9, 4) || '-0000-0000-000000000000';
        FOREACH tbl IN ARRAY ARRAY['events', 'event_payloads'] LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           tbl || '_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), tbl, low, high);
        END LOOP;
        EXECUTE format('CREATE TABLE %I PARTITION OF transitions FOR VALUES FROM (%L) TO (%L)',
                       'transitions_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), day, day + interval '1 day');
    END LOOP;
END
$$;

-- 7. How far the batched payload prune of each source has got (sources whose payload
--    retention is shorter than whole partitions allow), so no pass rereads pruned rows.
CREATE TABLE retention_progress (
    source                 text        PRIMARY KEY,
    payload_pruned_before  timestamptz NOT NULL
);
