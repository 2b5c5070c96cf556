"""One place that reads the environment (12-factor); everything else receives a Settings."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

DEFAULT_EMBEDDED_DB = "boxoffice-embedded.sqlite3"
Number = TypeVar("Number", int, float)


def _number(name: str, default: Number, parse: Callable[[str], Number], kind: str) -> Number:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from exc


def _int(name: str, default: int) -> int:
    return _number(name, default, int, "an integer")


def _float(name: str, default: float) -> float:
    return _number(name, default, float, "a number")


def _non_negative(value: int, name: str) -> int:
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def _positive(value: int, name: str) -> int:
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _flag(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


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


@dataclass(frozen=True)
class Settings:
    redis_url: str | None
    database_url: str | None
    hold_ttl_s: int = 300
    redis_cluster: bool = False
    key_prefix: str = "bo"
    secret: str | None = None
    # How long a confirm may keep its hold pinned while the payment runs.
    confirm_pin_s: int = 60
    # A payment left pending this long belongs to a cut-off confirm: the reconciler takes it.
    confirm_grace_s: float = 30.0
    # A failed payment whose provider found nothing is looked up again until this long after
    # it failed (engine/reconciler.py, "the watch"): a request in flight may still land.
    payment_settle_window_s: float = 86_400.0
    sweep_interval_s: float = 0.1
    # A show's Redis state is dropped this long after it started (engine/sweeper.py full_pass).
    unload_after_s: int = 3600
    reconcile_interval_s: float = 5.0
    browse_cache_s: float = 10.0
    max_body_bytes: int = 16_384
    redis_pool_size: int = 64
    # Show scripts of concurrent requests share pipelined writes (engine/redis/autopipeline.py;
    # per node on a cluster, engine/redis/cluster_pipeline.py).
    redis_autopipeline: bool = True
    db_pool_size: int = 10
    payment_provider: str = "boxoffice.engine.payments:SimulatedProvider"
    embedded_db_path: str = DEFAULT_EMBEDDED_DB
    keyspace_notifications: bool = True
    cors_origins: tuple[str, ...] = ()
    rate_limit_holds_per_min: int = 120
    rate_limit_ip_per_min: int = 600
    # A booking may be cancelled until this long before its show starts.
    cancel_cutoff_s: int = 3600
    # The release queue (engine/release_queue.py, docs/API.md "Release queue"): joining opens
    # this long before a show's sale_opens_at; a pass is valid this long; at most
    # queue_shoppers admitted buyers shop at once (0: the free seats over the usual group
    # size) and at most queue_admit_per_s are admitted a second.
    queue_opens_before_s: int = 900
    queue_pass_s: int = 600
    queue_shoppers: int = 0
    queue_group_size: int = 2
    queue_admit_per_s: int = 50
    # (name, token) pairs of the admin API; empty: the admin API does not exist.
    admin_tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)

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
        origins = os.environ.get("BOXOFFICE_CORS_ORIGINS", "")
        return cls(
            redis_url=redis_url,
            database_url=database_url,
            hold_ttl_s=_int("BOXOFFICE_HOLD_TTL_S", 300),
            redis_cluster=_flag("BOXOFFICE_REDIS_CLUSTER", False),
            key_prefix=os.environ.get("BOXOFFICE_KEY_PREFIX", "bo"),
            secret=os.environ.get("BOXOFFICE_SECRET") or None,
            confirm_pin_s=_int("BOXOFFICE_CONFIRM_PIN_S", 60),
            confirm_grace_s=_float("BOXOFFICE_CONFIRM_GRACE_S", 30.0),
            payment_settle_window_s=_float("BOXOFFICE_PAYMENT_SETTLE_WINDOW_S", 86_400.0),
            sweep_interval_s=_float("BOXOFFICE_SWEEP_INTERVAL_S", 0.1),
            unload_after_s=_non_negative(_int("BOXOFFICE_UNLOAD_AFTER_S", 3600), "BOXOFFICE_UNLOAD_AFTER_S"),
            reconcile_interval_s=_float("BOXOFFICE_RECONCILE_INTERVAL_S", 5.0),
            browse_cache_s=_float("BOXOFFICE_BROWSE_CACHE_S", 10.0),
            max_body_bytes=_int("BOXOFFICE_MAX_BODY_BYTES", 16_384),
            redis_pool_size=_int("BOXOFFICE_REDIS_POOL", 64),
            redis_autopipeline=_flag("BOXOFFICE_REDIS_AUTOPIPELINE", True),
            db_pool_size=_int("BOXOFFICE_DB_POOL", 10),
            payment_provider=os.environ.get(
                "BOXOFFICE_PAYMENT_PROVIDER", "boxoffice.engine.payments:SimulatedProvider"
            ),
            embedded_db_path=os.environ.get("BOXOFFICE_EMBEDDED_DB", DEFAULT_EMBEDDED_DB),
            keyspace_notifications=_flag("BOXOFFICE_KEYSPACE_NOTIFICATIONS", True),
            cors_origins=tuple(o.strip() for o in origins.split(",") if o.strip()),
            rate_limit_holds_per_min=_int("BOXOFFICE_RATE_HOLDS_PER_MIN", 120),
            rate_limit_ip_per_min=_int("BOXOFFICE_RATE_IP_PER_MIN", 600),
            cancel_cutoff_s=_non_negative(_int("BOXOFFICE_CANCEL_CUTOFF_S", 3600), "BOXOFFICE_CANCEL_CUTOFF_S"),
            queue_opens_before_s=_non_negative(_int("BOXOFFICE_QUEUE_OPENS_BEFORE_S", 900),
                                               "BOXOFFICE_QUEUE_OPENS_BEFORE_S"),
            queue_pass_s=_positive(_int("BOXOFFICE_QUEUE_PASS_S", 600), "BOXOFFICE_QUEUE_PASS_S"),
            queue_shoppers=_non_negative(_int("BOXOFFICE_QUEUE_SHOPPERS", 0), "BOXOFFICE_QUEUE_SHOPPERS"),
            queue_group_size=_positive(_int("BOXOFFICE_QUEUE_GROUP_SIZE", 2), "BOXOFFICE_QUEUE_GROUP_SIZE"),
            queue_admit_per_s=_positive(_int("BOXOFFICE_QUEUE_ADMIT_PER_S", 50), "BOXOFFICE_QUEUE_ADMIT_PER_S"),
            admin_tokens=parse_admin_tokens(os.environ.get("BOXOFFICE_ADMIN_TOKEN", "")),
        )

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
