-- The Refersion example's own table (not part of Hookline's migrations): one conversion
-- per sale. `order_id` is the sale; `event_id` the Hookline event that recorded it.
CREATE TABLE IF NOT EXISTS refersion_conversions (
    event_id     uuid           NOT NULL UNIQUE,
    order_id     text           NOT NULL UNIQUE,
    affiliate_id bigint         NOT NULL,
    commission   numeric(12, 2) NOT NULL,
    currency     text           NOT NULL,
    created_at   timestamptz    NOT NULL DEFAULT now()
);
