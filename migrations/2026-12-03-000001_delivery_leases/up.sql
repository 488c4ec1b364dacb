-- The first attempt of a delivery the deciding worker sends itself, without a
-- `deliveries` row until it has a result. Before, each such delivery was written twice:
-- its intent (a pending row, five index entries) in the decision transaction, then its
-- result (a non-HOT update: `state` is in the partial indexes' predicate). Now the
-- decision transaction writes one lease per (batch, destination), holding the batch's
-- events for that destination, and the settle writes each `deliveries` row once, in the
-- state the attempt left it (`delivered`, `failed`, `dead`, or `pending` with the
-- retry's due time). A lease whose worker died runs out (`expires_at`) and is expanded,
-- by any worker, into pending `deliveries` rows (attempt 1 counted as made), deleting
-- the lease in the same statement: from then on those deliveries are claimed like any
-- due row. The settle locks the lease (`FOR UPDATE`) and the expansion skips locked ones,
-- so a result and an expansion of the same lease never both apply; a result whose lease
-- is already gone updates the expanded row instead (fenced by the attempt number).
-- `settled` counts the entries that have their row; the lease goes when all `entries`
-- have. The settle writes each row from what the worker holds: the arrays are read back
-- only by the expansion and the readers (they are TOASTed once a batch is large, and
-- subscripting a TOASTed array decompresses it again for every element read).
-- Readers (`GET /v1/events/{id}`, `hookline deliveries list`, the backlog gauge) show
-- the unsettled entries as pending deliveries.
CREATE TABLE delivery_leases (
    id             bigserial   PRIMARY KEY,
    destination    text        NOT NULL,
    entries        integer     NOT NULL,
    event_ids      uuid[]      NOT NULL,
    sources        text[]      NOT NULL,
    resource_keys  text[]      NOT NULL,
    statuses       text[]      NOT NULL,
    outcomes       text[]      NOT NULL,
    settled        integer     NOT NULL DEFAULT 0,
    expires_at     timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX delivery_leases_expires_at ON delivery_leases (expires_at);
