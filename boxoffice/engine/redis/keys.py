"""The one place that builds Redis key names. Every key of a show carries the show's hash
tag, so each script touches one cluster slot; names stay readable for dashboards."""

from __future__ import annotations

from dataclasses import dataclass

SHOW_KEY_NAMES = ("meta", "layout", "seats", "deadlines", "customers", "waitlist", "waiters", "stats")


@dataclass(frozen=True)
class Keys:
    prefix: str = "bo"

    def show_base(self, show_id: int) -> str:
        return f"{self.prefix}:show:{{{show_id}}}:"

    def show_keys(self, show_id: int) -> list[str]:
        """The show's keys that lua/includes/context.lua lists, in its order."""
        base = self.show_base(show_id)
        return [base + name for name in SHOW_KEY_NAMES]

    def script_keys(self, show_id: int) -> list[str]:
        """KEYS of every show script: the meta hash alone, which names the show's cluster
        slot (the scripts name the other keys from the show's base)."""
        return [self.show_base(show_id) + SHOW_KEY_NAMES[0]]

    def hold(self, show_id: int, hold_id: str) -> str:
        return f"{self.show_base(show_id)}hold:{hold_id}"

    def entry(self, show_id: int, entry_id: str) -> str:
        return f"{self.show_base(show_id)}entry:{entry_id}"

    def queue(self, show_id: int) -> str:
        """Sorted set of the release queue's waiting tickets, in admission order."""
        return self.show_base(show_id) + "queue"

    def ticket(self, show_id: int, ticket_id: str) -> str:
        """A release queue ticket's hash (lua/includes/queue.lua names the queue's keys)."""
        return f"{self.show_base(show_id)}ticket:{ticket_id}"

    def records(self, show_id: int) -> str:
        """Set of the suffixes ("hold:<id>", "entry:<id>") of every hold and entry hash of the
        show, ended ones too: how lua/unload_show-1.lua finds them all."""
        return self.show_base(show_id) + "records"

    def stats(self, show_id: int) -> str:
        return self.show_base(show_id) + "stats"

    def wake(self, show_id: int) -> str:
        """A marker key that expires at the show's next deadline: its `expired` keyspace
        event wakes the sweepers (engine/redis/expiry_wakeups.py)."""
        return self.show_base(show_id) + "wake"

    def changes_channel(self, show_id: int) -> str:
        return self.show_base(show_id) + "changes"

    def changes_pattern(self) -> str:
        return f"{self.prefix}:show:*:changes"

    @property
    def sweep_index(self) -> str:
        """Sorted set: show id -> when a sweeper should next look at it (ms)."""
        return f"{self.prefix}:sweep:due"

    @property
    def loaded_shows(self) -> str:
        """Set of shows loaded into Redis: the slow safety-net sweep visits them all (and
        unloads those that started more than `unload_after_s` ago)."""
        return f"{self.prefix}:shows:loaded"

    @property
    def running_queues(self) -> str:
        """Set of shows whose release queue runs: the sweeper's tick admits for each."""
        return f"{self.prefix}:queues:running"

    def rate(self, show_id: int, scope: str, subject: str) -> str:
        """An abuse limit's counter of the show (lua/includes/ratelimit.lua builds the same
        name): scope "a" per client address, "c" per customer."""
        return f"{self.show_base(show_id)}rate:{scope}:{subject}"

    def is_rate_counter(self, key: str) -> bool:
        return key.startswith(f"{self.prefix}:show:") and ":rate:" in key
