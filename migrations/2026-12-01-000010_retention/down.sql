-- Back to one wide, unpartitioned events table and a plain transitions table. Pruned
-- payloads come back empty. A key received again after its horizon has several events;
-- the old layout's unique key keeps the first of them.
CREATE TABLE events_wide (
    id            uuid        NOT NULL,
    source        text        NOT NULL,
    dedup_key     text        NOT NULL,
    resource_key  text,
    status        text,
    state         text        NOT NULL DEFAULT 'received'
                  CHECK (state IN ('received', 'published', 'processed', 'failed', 'dead')),
    headers       jsonb       NOT NULL,
    query         text        NOT NULL DEFAULT '',
    body          bytea       NOT NULL,
    traceparent   text,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    processed_at  timestamptz,
    CONSTRAINT events_wide_pkey PRIMARY KEY (id),
    CONSTRAINT events_wide_source_dedup_key UNIQUE (source, dedup_key)
);
INSERT INTO events_wide
    SELECT e.id, e.source, e.dedup_key, e.resource_key, e.status, e.state,
           coalesce(p.headers, '[]'), coalesce(p.query, ''), coalesce(p.body, ''::bytea),
           e.traceparent, e.attempts, e.last_error, e.received_at, e.processed_at
    FROM events e LEFT JOIN event_payloads p ON p.id = e.id
    ORDER BY e.id
    ON CONFLICT (source, dedup_key) DO NOTHING;
DROP TABLE events, event_payloads, dedup_keys, dedup_generations, retention_progress;
ALTER TABLE events_wide RENAME TO events;
ALTER TABLE events RENAME CONSTRAINT events_wide_pkey TO events_pkey;
ALTER TABLE events RENAME CONSTRAINT events_wide_source_dedup_key TO events_source_dedup_key;
CREATE INDEX events_source_received_at ON events (source, received_at);
CREATE INDEX events_state_received_at ON events (state, received_at) WHERE state IN ('failed', 'dead');

CREATE TABLE transitions_plain (
    id            bigint      NOT NULL DEFAULT nextval('transitions_id_seq'),
    source        text        NOT NULL,
    resource_key  text        NOT NULL,
    event_id      uuid,
    from_status   text,
    to_status     text        NOT NULL,
    outcome       text        NOT NULL
                  CHECK (outcome IN ('applied', 'unchanged', 'rejected_downgrade', 'rejected_terminal', 'forced')),
    reason        text,
    actor         text,
    at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT transitions_plain_pkey PRIMARY KEY (id)
);
INSERT INTO transitions_plain SELECT * FROM transitions;
ALTER SEQUENCE transitions_id_seq OWNED BY transitions_plain.id;
DROP TABLE transitions;
ALTER TABLE transitions_plain RENAME TO transitions;
ALTER TABLE transitions RENAME CONSTRAINT transitions_plain_pkey TO transitions_pkey;
CREATE INDEX transitions_resource ON transitions (source, resource_key, id);
CREATE INDEX transitions_event ON transitions (event_id);
