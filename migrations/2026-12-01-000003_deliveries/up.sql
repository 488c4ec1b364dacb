-- One row per (event, destination): the intent to deliver a decided event over HTTP,
-- committed in the event's decision transaction, then its progress. The worker's delivery
-- path claims due rows (a lease: next_attempt_at moves past the attempt's timeout, so a
-- killed worker's claim is retried by another), POSTs, and records the result.
-- No foreign key to events: retention drops event partitions on its own schedule.
CREATE TABLE deliveries (
    id               bigserial   PRIMARY KEY,
    event_id         uuid        NOT NULL,
    destination      text        NOT NULL,
    source           text        NOT NULL,
    resource_key     text,
    status           text,
    outcome          text,
    state            text        NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed', 'dead')),
    attempts         integer     NOT NULL DEFAULT 0,
    last_status      integer,
    last_error       text,
    latency_ms       integer,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CONSTRAINT deliveries_event_destination UNIQUE (event_id, destination)
);

-- What is due, per destination. Partial: settled rows leave it.
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at) WHERE state = 'pending';
-- `ordered = true`: the oldest pending delivery per resource goes first.
CREATE INDEX deliveries_pending_resource ON deliveries (destination, source, resource_key, id)
    WHERE state = 'pending';
-- Listing, redrive and retention by time.
CREATE INDEX deliveries_created_at ON deliveries (created_at);

-- A destination that answered 410 Gone: nothing is sent to it until an operator
-- redrives it (`hookline deliveries redrive --destination NAME`).
CREATE TABLE destination_pauses (
    destination  text        PRIMARY KEY,
    reason       text        NOT NULL,
    paused_at    timestamptz NOT NULL DEFAULT now()
);
