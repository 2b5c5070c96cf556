-- The ledger of the built-in simulated payment provider. It stands for the
-- provider's own books (outside our transactions), so tests and the bench audit
-- can count every charge and refund, even across a killed service process.

CREATE TABLE simulated_payments (
    provider_key  TEXT PRIMARY KEY CHECK (length(provider_key) BETWEEN 1 AND 200),
    reference     TEXT NOT NULL UNIQUE,
    amount        INTEGER NOT NULL CHECK (amount >= 0),
    currency      TEXT NOT NULL CHECK (length(currency) = 3),
    status        TEXT NOT NULL CHECK (status IN ('captured', 'refunded')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    refunded_at   TIMESTAMPTZ
);
