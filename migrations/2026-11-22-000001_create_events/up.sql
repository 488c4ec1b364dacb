-- Every webhook Hookline acknowledged, with its raw bytes. The unique key is the
-- deduplication contract: one row per (source, dedup_key), whatever the concurrency.
CREATE TABLE events (
    id            uuid        PRIMARY KEY,
    source        text        NOT NULL,
    dedup_key     text        NOT NULL,
    resource_key  text,
    status        text,
    state         text        NOT NULL DEFAULT 'received'
                  CHECK (state IN ('received', 'published', 'processed', 'failed', 'dead')),
    -- [{"name": "...", "value": "..."}] in arrival order; non-UTF-8 values as {"name", "value_base64"}
    headers       jsonb       NOT NULL,
    query         text        NOT NULL DEFAULT '',
    body          bytea       NOT NULL,
    traceparent   text,
    attempts      integer     NOT NULL DEFAULT 0,
    last_error    text,
    received_at   timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    processed_at  timestamptz,
    CONSTRAINT events_source_dedup_key UNIQUE (source, dedup_key)
);

-- The outbox: committed but not yet confirmed by the broker. Partial, so it stays tiny.
CREATE INDEX events_outbox ON events (received_at) WHERE state = 'received';
CREATE INDEX events_source_received_at ON events (source, received_at);
CREATE INDEX events_state_received_at ON events (state, received_at) WHERE state IN ('failed', 'dead');

-- The current status of each resource (an Apify run, a payment, a call).
CREATE TABLE resources (
    source         text        NOT NULL,
    resource_key   text        NOT NULL,
    status         text,
    terminal       boolean     NOT NULL DEFAULT false,
    last_event_id  uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, resource_key)
);

-- Every decision the lifecycle made, including rejected and forced ones (the audit log).
CREATE TABLE transitions (
    id            bigserial   PRIMARY KEY,
    source        text        NOT NULL,
    resource_key  text        NOT NULL,
    event_id      uuid,
    from_status   text,
    to_status     text        NOT NULL,
    outcome       text        NOT NULL
                  CHECK (outcome IN ('applied', 'unchanged', 'rejected_downgrade', 'rejected_terminal', 'forced')),
    reason        text,
    actor         text,
    at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX transitions_resource ON transitions (source, resource_key, id);
CREATE INDEX transitions_event ON transitions (event_id);
