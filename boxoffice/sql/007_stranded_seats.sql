-- A show may refuse explicit holds that would leave a single free seat stranded
-- between taken seats, an aisle or a wall (docs/API.md, "Holds"). Off (0) by default,
-- so the contract of explicit holds is unchanged; holds by count avoid stranding
-- seats whatever this says.
ALTER TABLE shows ADD COLUMN no_stranded_seats SMALLINT NOT NULL DEFAULT 0;
