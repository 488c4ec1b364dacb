-- The claim reads due deliveries in (next_attempt_at, id) order and stops after LIMIT
-- rows. With the index on (destination, next_attempt_at) alone, PostgreSQL had to read
-- and sort every due row of the destination for each claim (15 ms at 40 000 pending,
-- which held one destination to ~110 deliveries/s); with id in the index the claim is
-- an index range scan that stops at the limit (0.1 ms).
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at, id) WHERE state = 'pending';
