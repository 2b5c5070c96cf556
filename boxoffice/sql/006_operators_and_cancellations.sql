-- Operators and cancellations.

-- Every change made through the admin API: what, to which record, when (the
-- database's clock) and under which token's name.
CREATE TABLE admin_changes (
    id          TEXT PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 64),
    token_name  TEXT NOT NULL CHECK (length(token_name) BETWEEN 1 AND 64),
    action      TEXT NOT NULL CHECK (length(action) BETWEEN 1 AND 64),
    target      TEXT NOT NULL CHECK (length(target) BETWEEN 1 AND 64),
    details     TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX admin_changes_by_time ON admin_changes (created_at);

-- When a show's sale opens (NULL: on sale now), and how its release queue orders
-- the buyers who came before that.
ALTER TABLE shows ADD COLUMN sale_opens_at TIMESTAMPTZ;
ALTER TABLE shows ADD COLUMN queue_order TEXT NOT NULL DEFAULT 'arrival'
    CHECK (queue_order IN ('arrival', 'shuffle_before_open'));

-- A cancellation, recorded BEFORE the refund (the intent): a cancel cut off at
-- any step is finished by the reconciler from this row alone. 'pending': the
-- refund may not be done yet; 'refunded': given back and the booked seats
-- deleted. released_at: Redis has the seats back (or never needed telling).
-- The booking row stays; its seats are kept here once booked_seats lets them go.
CREATE TABLE cancellations (
    booking_id       TEXT PRIMARY KEY REFERENCES bookings (id) ON DELETE CASCADE,
    show_id          BIGINT NOT NULL REFERENCES shows (id) ON DELETE RESTRICT,
    idempotency_key  TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    seats            TEXT NOT NULL CHECK (length(seats) BETWEEN 2 AND 200),
    amount           INTEGER NOT NULL CHECK (amount >= 0),
    currency         TEXT NOT NULL CHECK (length(currency) = 3),
    status           TEXT NOT NULL CHECK (status IN ('pending', 'refunded')),
    refund_status    TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    released_at      TIMESTAMPTZ
);
CREATE INDEX cancellations_unfinished ON cancellations (created_at) WHERE released_at IS NULL;
CREATE INDEX cancellations_by_show ON cancellations (show_id);
