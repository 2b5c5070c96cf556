-- What the confirm reconciler needs to finish a cut-off confirm exactly as the
-- client asked, and to find the rare rows that still need a look without
-- scanning the whole sales history.

-- The client's Idempotency-Key of the confirm that wrote the payment row: a sale
-- finished by the reconciler answers the client's retry with the same booking,
-- and one key never has two payments in flight.
ALTER TABLE payments ADD COLUMN idempotency_key TEXT
    CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 200);
CREATE INDEX payments_by_key ON payments (hold_id, idempotency_key);

-- Set once the provider's books are seen to agree with a payment that did not
-- end in a booking (refund done, or no charge standing).
ALTER TABLE payments ADD COLUMN provider_settled_at TIMESTAMPTZ;
CREATE INDEX payments_unsettled ON payments (updated_at)
    WHERE provider_settled_at IS NULL AND status IN ('failed', 'refunded');

-- Set once Redis is known to show the booking's seats as booked (written in
-- batches after the fact); the reconciler repairs Redis for the rest.
ALTER TABLE bookings ADD COLUMN marked_at TIMESTAMPTZ;
CREATE INDEX bookings_unmarked ON bookings (created_at) WHERE marked_at IS NULL;
