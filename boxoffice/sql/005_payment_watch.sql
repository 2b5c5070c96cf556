-- The reconciler's watch over failed payments: a provider that found nothing
-- may still land a request that was in flight, so such a payment is looked up
-- again, less often as it ages, until the provider's answer is final or the
-- settle window (BOXOFFICE_PAYMENT_SETTLE_WINDOW_S) has passed.

-- When the provider was last asked about this payment (the database's clock).
ALTER TABLE payments ADD COLUMN provider_checked_at TIMESTAMPTZ;
