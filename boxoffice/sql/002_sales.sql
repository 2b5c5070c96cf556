-- Sales: the durable record of every booking and payment. PostgreSQL is the
-- source of truth for what was sold; UNIQUE (show_id, seat_id) on booked_seats
-- makes a double sale impossible even if Redis is wrong or wiped.

CREATE TABLE bookings (
    id          TEXT PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 64),
    show_id     BIGINT NOT NULL REFERENCES shows (id) ON DELETE RESTRICT,
    hold_id     TEXT NOT NULL UNIQUE CHECK (length(hold_id) BETWEEN 16 AND 80),
    customer    TEXT NOT NULL CHECK (length(customer) BETWEEN 1 AND 254),
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    currency    TEXT NOT NULL CHECK (length(currency) = 3),
    status      TEXT NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (id, show_id)
);
CREATE INDEX bookings_by_show ON bookings (show_id);
CREATE INDEX bookings_by_time ON bookings (created_at);

CREATE TABLE booked_seats (
    booking_id  TEXT NOT NULL,
    show_id     BIGINT NOT NULL,
    hall_id     BIGINT NOT NULL,
    seat_id     TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount >= 0),
    PRIMARY KEY (booking_id, seat_id),
    UNIQUE (show_id, seat_id),
    FOREIGN KEY (booking_id, show_id) REFERENCES bookings (id, show_id) ON DELETE CASCADE,
    FOREIGN KEY (show_id, hall_id) REFERENCES shows (id, hall_id) ON DELETE RESTRICT,
    FOREIGN KEY (hall_id, seat_id) REFERENCES seats (hall_id, id) ON DELETE RESTRICT
);

-- One row per charge attempt, written BEFORE the provider is called, so a
-- confirm cut off at any step is found and finished or undone by the reconciler.
CREATE TABLE payments (
    id               TEXT PRIMARY KEY CHECK (length(id) BETWEEN 16 AND 64),
    hold_id          TEXT NOT NULL CHECK (length(hold_id) BETWEEN 16 AND 80),
    show_id          BIGINT NOT NULL REFERENCES shows (id) ON DELETE RESTRICT,
    provider_key     TEXT NOT NULL UNIQUE CHECK (length(provider_key) BETWEEN 1 AND 200),
    provider         TEXT NOT NULL CHECK (length(provider) BETWEEN 1 AND 50),
    provider_ref     TEXT,
    amount           INTEGER NOT NULL CHECK (amount >= 0),
    currency         TEXT NOT NULL CHECK (length(currency) = 3),
    status           TEXT NOT NULL
                     CHECK (status IN ('pending', 'captured', 'declined', 'failed', 'refunded')),
    fence            BIGINT NOT NULL CHECK (fence > 0),
    -- what the hold was, so a cut-off confirm can be finished from this row alone
    customer         TEXT NOT NULL CHECK (length(customer) BETWEEN 1 AND 254),
    seats            TEXT NOT NULL CHECK (length(seats) BETWEEN 2 AND 200),
    booking_id       TEXT REFERENCES bookings (id) ON DELETE RESTRICT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CHECK ((status = 'captured') = (booking_id IS NOT NULL))
);
CREATE INDEX payments_pending ON payments (created_at) WHERE status = 'pending';
CREATE INDEX payments_by_hold ON payments (hold_id);

-- A client's Idempotency-Key, scoped to the hold it confirmed.
CREATE TABLE idempotency_keys (
    hold_id     TEXT NOT NULL CHECK (length(hold_id) BETWEEN 16 AND 80),
    key         TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    booking_id  TEXT NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (hold_id, key)
);

-- Service-wide secrets (the key that signs hold and entry ids), made once.
CREATE TABLE service_secrets (
    name   TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 50),
    value  TEXT NOT NULL CHECK (length(value) >= 32)
);
