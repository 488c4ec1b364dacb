DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at) WHERE state = 'pending';
