ALTER TABLE events ADD COLUMN published_at timestamptz;
UPDATE events SET state = 'published'
    WHERE state = 'received' AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.event_id = events.id);
CREATE INDEX events_outbox ON events (received_at) WHERE state = 'received';
DROP TABLE outbox;
