-- Catalog: where and what is showing. Ids are assigned by the seeder (or the
-- operator's import), so the same definition runs on PostgreSQL and, for the
-- embedded first-try mode, on SQLite.

CREATE TABLE cities (
    id        BIGINT PRIMARY KEY CHECK (id > 0),
    name      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    country   TEXT NOT NULL CHECK (length(country) = 2),
    UNIQUE (country, name)
);

CREATE TABLE cinemas (
    id        BIGINT PRIMARY KEY CHECK (id > 0),
    city_id   BIGINT NOT NULL REFERENCES cities (id) ON DELETE RESTRICT,
    name      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    address   TEXT NOT NULL CHECK (length(address) BETWEEN 1 AND 200),
    UNIQUE (city_id, name)
);
CREATE INDEX cinemas_by_city ON cinemas (city_id);

CREATE TABLE halls (
    id          BIGINT PRIMARY KEY CHECK (id > 0),
    cinema_id   BIGINT NOT NULL REFERENCES cinemas (id) ON DELETE RESTRICT,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    seat_count  INTEGER NOT NULL CHECK (seat_count BETWEEN 1 AND 5000),
    UNIQUE (cinema_id, name)
);
CREATE INDEX halls_by_cinema ON halls (cinema_id);

-- A seat is identified by its label within its hall ("F12").
CREATE TABLE seats (
    hall_id    BIGINT NOT NULL REFERENCES halls (id) ON DELETE CASCADE,
    id         TEXT NOT NULL CHECK (length(id) BETWEEN 2 AND 8),
    row_label  TEXT NOT NULL CHECK (length(row_label) BETWEEN 1 AND 3),
    number     INTEGER NOT NULL CHECK (number BETWEEN 1 AND 999),
    category   TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 32),
    kind       TEXT NOT NULL DEFAULT 'standard'
               CHECK (kind IN ('standard', 'wheelchair', 'companion')),
    x          INTEGER NOT NULL CHECK (x BETWEEN 0 AND 10000),
    y          INTEGER NOT NULL CHECK (y BETWEEN 0 AND 10000),
    PRIMARY KEY (hall_id, id),
    UNIQUE (hall_id, row_label, number),
    UNIQUE (hall_id, x, y)
);

CREATE TABLE movies (
    id            BIGINT PRIMARY KEY CHECK (id > 0),
    title         TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    runtime_min   INTEGER NOT NULL CHECK (runtime_min BETWEEN 1 AND 600),
    rating        TEXT NOT NULL CHECK (length(rating) BETWEEN 1 AND 10),
    release_date  DATE NOT NULL,
    -- comma-separated genre names; a join table would be overkill for a label list
    genres        TEXT NOT NULL DEFAULT ''
);

CREATE TABLE shows (
    id         BIGINT PRIMARY KEY CHECK (id > 0),
    movie_id   BIGINT NOT NULL REFERENCES movies (id) ON DELETE RESTRICT,
    hall_id    BIGINT NOT NULL REFERENCES halls (id) ON DELETE RESTRICT,
    starts_at  TIMESTAMPTZ NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    currency   TEXT NOT NULL DEFAULT 'EUR' CHECK (length(currency) = 3),
    -- lets booked_seats prove its seat belongs to this show's hall
    UNIQUE (id, hall_id),
    UNIQUE (hall_id, starts_at)
);
CREATE INDEX shows_by_movie_time ON shows (movie_id, starts_at);

CREATE TABLE show_prices (
    show_id   BIGINT NOT NULL REFERENCES shows (id) ON DELETE CASCADE,
    category  TEXT NOT NULL CHECK (length(category) BETWEEN 1 AND 32),
    amount    INTEGER NOT NULL CHECK (amount >= 0 AND amount <= 1000000),
    PRIMARY KEY (show_id, category)
);
