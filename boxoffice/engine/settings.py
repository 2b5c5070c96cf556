"""One place that reads the environment (12-factor); everything else receives a Settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_EMBEDDED_DB = "boxoffice-embedded.sqlite3"


def _parsed(parse: Callable[[str], Any], kind: str) -> Callable[[str, str], Any]:
    """A parser of one setting's text that names the variable when the text is not `kind`."""
    def read(name: str, raw: str) -> Any:
        try:
            return parse(raw)
        except ValueError as exc:
            raise ValueError(f"{name} must be {kind}, got {raw!r}") from exc
    return read


_int = _parsed(int, "an integer")
_float = _parsed(float, "a number")


def _non_negative(name: str, raw: str) -> int:
    value = int(_int(name, raw))
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _positive(name: str, raw: str) -> int:
    value = int(_int(name, raw))
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _flag(name: str, raw: str) -> bool:
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def _text(name: str, raw: str) -> str:
    return raw


def _origins(name: str, raw: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in raw.split(",") if o.strip())


def _env(variable: str, default: Any, parse: Callable[[str, str], Any], **options: Any) -> Any:
    """A setting read from `variable`; unset or empty, it keeps `default`: the one place a
    default is written (tests/ops/test_settings.py holds README.md's table to these)."""
    return field(default=default, metadata={"env": variable, "parse": parse}, **options)


# An admin token this short could be guessed; refusing it at start beats a weak admin API.
MIN_ADMIN_TOKEN_LENGTH = 16


def parse_admin_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    """BOXOFFICE_ADMIN_TOKEN: one token (named "admin"), or `name:token,name2:token2` so
    each operator's changes are recorded under a name of their own."""
    tokens: list[tuple[str, str]] = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        name, _, token = part.partition(":") if ":" in part else ("admin", "", part)
        if not name or len(name) > 64 or len(token) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError("BOXOFFICE_ADMIN_TOKEN: each token needs a name of 1-64 characters and at least"
                             f" {MIN_ADMIN_TOKEN_LENGTH} characters of token")
        tokens.append((name, token))
    return tuple(tokens)


def _admin_tokens(name: str, raw: str) -> tuple[tuple[str, str], ...]:
    return parse_admin_tokens(raw)


@dataclass(frozen=True)
class Settings:
    redis_url: str | None
    database_url: str | None
    hold_ttl_s: int = _env("BOXOFFICE_HOLD_TTL_S", 300, _int)
    redis_cluster: bool = _env("BOXOFFICE_REDIS_CLUSTER", False, _flag)
    key_prefix: str = _env("BOXOFFICE_KEY_PREFIX", "bo", _text)
    secret: str | None = _env("BOXOFFICE_SECRET", None, _text)
    # How long a confirm may keep its hold pinned while the payment runs.
    confirm_pin_s: int = _env("BOXOFFICE_CONFIRM_PIN_S", 60, _int)
    # A payment left pending this long belongs to a cut-off confirm: the reconciler takes it.
    confirm_grace_s: float = _env("BOXOFFICE_CONFIRM_GRACE_S", 30.0, _float)
    # A failed payment whose provider found nothing is looked up again until this long after
    # it failed (engine/reconciler.py, "the watch"): a request in flight may still land.
    payment_settle_window_s: float = _env("BOXOFFICE_PAYMENT_SETTLE_WINDOW_S", 86_400.0, _float)
    sweep_interval_s: float = _env("BOXOFFICE_SWEEP_INTERVAL_S", 0.1, _float)
    # A show's Redis state is dropped this long after it started (engine/sweeper.py full_pass).
    unload_after_s: int = _env("BOXOFFICE_UNLOAD_AFTER_S", 3600, _non_negative)
    reconcile_interval_s: float = _env("BOXOFFICE_RECONCILE_INTERVAL_S", 5.0, _float)
    browse_cache_s: float = _env("BOXOFFICE_BROWSE_CACHE_S", 10.0, _float)
    max_body_bytes: int = _env("BOXOFFICE_MAX_BODY_BYTES", 16_384, _int)
    redis_pool_size: int = _env("BOXOFFICE_REDIS_POOL", 64, _int)
    # Requests of the Redis routes one worker keeps in flight; one more answers 503
    # overloaded at once (api/shedding.py). 0: no bound.
    max_in_flight: int = _env("BOXOFFICE_MAX_IN_FLIGHT", 256, _non_negative)
    # Requests of the crowd (browsing, queue tickets, waitlist entries) one worker runs at
    # once; the next wait their turn, so the sale's requests never queue behind them
    # (api/shedding.py). 8 measured best of 8, 16 and 32 for the sale's and the crowd's own
    # latency alike (bench/RESULTS.md, "The sale first"). 0: not held back.
    crowd_in_flight: int = _env("BOXOFFICE_CROWD_IN_FLIGHT", 8, _non_negative)
    # Show scripts of concurrent requests share pipelined writes (engine/redis/autopipeline.py;
    # per node on a cluster, engine/redis/cluster_pipeline.py).
    redis_autopipeline: bool = _env("BOXOFFICE_REDIS_AUTOPIPELINE", True, _flag)
    db_pool_size: int = _env("BOXOFFICE_DB_POOL", 10, _int)
    payment_provider: str = _env("BOXOFFICE_PAYMENT_PROVIDER", "boxoffice.engine.payments:SimulatedProvider", _text)
    embedded_db_path: str = _env("BOXOFFICE_EMBEDDED_DB", DEFAULT_EMBEDDED_DB, _text)
    keyspace_notifications: bool = _env("BOXOFFICE_KEYSPACE_NOTIFICATIONS", True, _flag)
    cors_origins: tuple[str, ...] = _env("BOXOFFICE_CORS_ORIGINS", (), _origins)
    rate_limit_holds_per_min: int = _env("BOXOFFICE_RATE_HOLDS_PER_MIN", 120, _int)
    rate_limit_ip_per_min: int = _env("BOXOFFICE_RATE_IP_PER_MIN", 600, _int)
    # A booking may be cancelled until this long before its show starts.
    cancel_cutoff_s: int = _env("BOXOFFICE_CANCEL_CUTOFF_S", 3600, _non_negative)
    # The release queue (engine/release_queue.py, docs/API.md "Release queue"): joining opens
    # this long before a show's sale_opens_at; a pass is valid this long; at most
    # queue_shoppers admitted buyers shop at once (0: the free seats over the usual group
    # size) and at most queue_admit_per_s are admitted a second (10: buyers picking from
    # the seat map then rarely race each other for the same seats; docs/API.md says why).
    queue_opens_before_s: int = _env("BOXOFFICE_QUEUE_OPENS_BEFORE_S", 900, _non_negative)
    queue_pass_s: int = _env("BOXOFFICE_QUEUE_PASS_S", 600, _positive)
    queue_shoppers: int = _env("BOXOFFICE_QUEUE_SHOPPERS", 0, _non_negative)
    queue_group_size: int = _env("BOXOFFICE_QUEUE_GROUP_SIZE", 2, _positive)
    queue_admit_per_s: int = _env("BOXOFFICE_QUEUE_ADMIT_PER_S", 10, _positive)
    # (name, token) pairs of the admin API; empty: the admin API does not exist.
    admin_tokens: tuple[tuple[str, str], ...] = _env("BOXOFFICE_ADMIN_TOKEN", (), _admin_tokens, repr=False)

    @property
    def embedded(self) -> bool:
        return self.redis_url is None and self.database_url is None

    @classmethod
    def from_env(cls) -> Settings:
        redis_url = os.environ.get("REDIS_URL") or None
        database_url = os.environ.get("DATABASE_URL") or None
        if (redis_url is None) != (database_url is None):
            raise ValueError(
                "set both REDIS_URL and DATABASE_URL for the real servers, or neither for embedded mode"
            )
        values: dict[str, Any] = {}
        for setting in fields(cls):
            variable = setting.metadata.get("env")
            raw = os.environ.get(variable) if variable else None
            if raw:  # unset or empty: the default
                values[setting.name] = setting.metadata["parse"](variable, raw)
        return cls(redis_url=redis_url, database_url=database_url, **values)

    def with_changes(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL for the configured database."""
        if self.database_url is None:
            return f"sqlite+aiosqlite:///{Path(self.embedded_db_path).resolve()}"
        url = self.database_url
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain):]
        return url
