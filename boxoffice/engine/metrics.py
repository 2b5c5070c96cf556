"""Prometheus metrics of the service, safe with many worker processes.

One process: the default registry. Several workers (`boxoffice serve --workers N`):
PROMETHEUS_MULTIPROC_DIR names a directory the workers share (the CLI makes a fresh one
when it is not set); prometheus-client then keeps each process's values in files there
and `render()` adds them up at scrape time. The variable must be set before the workers
start: prometheus-client reads it when it is first imported.

What is measured:
- boxoffice_operations_total{operation, outcome} and boxoffice_operation_seconds{operation}:
  every hold, release, confirm, seat map, waitlist join and leave through the API
  (outcome: ok, an error code of the contract, or unavailable);
- boxoffice_hold_expiries_total and boxoffice_hold_expiry_lateness_seconds: holds ended at
  their deadline, and how long after it (the contract allows one second);
- boxoffice_waitlist_grants_total and boxoffice_waitlist_wait_seconds: grants to waiters and
  how long each had waited; these two come from the scripts themselves (lua/includes/
  settle.lua returns them), so every path that expires or grants is counted exactly once;
- gauges of pool use per process, summed over the live workers;
- boxoffice_integrity_violations_total{check}: what the service's own checks found that
  must never happen (INTEGRITY_CHECKS says what each means); every check starts at 0, so
  an alert on it has a series to look at from the first scrape;
- boxoffice_payments_pending_past_grace: payments still pending longer than the confirm
  grace, counted by each process's reconciler pass (the reconciler should have taken them);
- boxoffice_dependency_up{dependency}: Redis and PostgreSQL answering, probed every few
  seconds by each process (the lowest over the live workers: one cut off is down);
- boxoffice_show_seats{show_id, state} and boxoffice_show_waitlist_entries{show_id}: seat
  states and waiters from the stats hashes in Redis, read at scrape time
  (render_show_seats), for the SHOW_GAUGE_LIMIT busiest loaded shows only (a bounded
  number of series); boxoffice_seats{state} and boxoffice_waitlist_entries: the same
  summed over every loaded show;
- the release queue, per show with a running queue (a handful at a time): tickets waiting
  (boxoffice_queue_waiting) and admitted buyers shopping (boxoffice_queue_shopping) as the
  sweeper's last tick saw them, admissions (boxoffice_queue_admissions_total), passes lapsed
  unused (boxoffice_queue_pass_expiries_total) and the time from joining to admission
  (boxoffice_queue_wait_seconds); the scripts hand over what happened since the last tick
  (lua/queue_admit-1.lua), so each admission is counted once."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as prometheus_multiprocess
from prometheus_client.core import GaugeMetricFamily

from boxoffice.engine.redis.keys import Keys

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
POOL_SAMPLE_INTERVAL_S = 1.0
DEPENDENCY_SAMPLE_INTERVAL_S = 5.0
# Per-show series cost Prometheus one series per show and state: only the busiest shows
# get them (the totals cover the rest). Reading is capped too: a scrape reads at most
# SHOW_READ_LIMIT stats hashes (one pipelined round trip on a single Redis), within
# SHOW_READ_TIMEOUT_S.
SHOW_GAUGE_LIMIT = 20
SHOW_READ_LIMIT = 2000
SHOW_READ_TIMEOUT_S = 1.0
SEAT_STATES = ("free", "held", "booked")
# The stats hash has the hall's seats, not the free ones: free is what is neither held nor
# booked (lua/includes/context.lua, seat_counts). waiting: entries, not seats.
STATS_FIELDS = ("seats", "held", "booked", "waiting")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
WAIT_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)

OPERATIONS = Counter("boxoffice_operations", "API operations by outcome", ["operation", "outcome"])
OPERATION_SECONDS = Histogram("boxoffice_operation_seconds", "Time to answer an API operation",
                              ["operation"], buckets=LATENCY_BUCKETS)
EXPIRIES = Counter("boxoffice_hold_expiries", "Holds ended at their deadline")
EXPIRY_LATENESS = Histogram("boxoffice_hold_expiry_lateness_seconds",
                            "How long after its deadline a hold was ended", buckets=LATENESS_BUCKETS)
SHED = Counter("boxoffice_shed_requests", "Requests answered 503 overloaded (BOXOFFICE_MAX_IN_FLIGHT reached)")
CROWD_DEFERRED = Counter("boxoffice_crowd_deferred_requests",
                         "Requests of the crowd that waited for their turn (BOXOFFICE_CROWD_IN_FLIGHT running)")
GRANTS = Counter("boxoffice_waitlist_grants", "Seats handed to waiters (one per grant)")
WAITLIST_WAIT = Histogram("boxoffice_waitlist_wait_seconds", "From joining the waitlist to the grant",
                          buckets=WAIT_BUCKETS)
REDIS_IN_USE = Gauge("boxoffice_redis_connections_in_use", "Redis connections lent out now",
                     multiprocess_mode="livesum")
REDIS_POOL_MAX = Gauge("boxoffice_redis_connections_max", "Redis connection pool limit",
                       multiprocess_mode="livesum")
DB_IN_USE = Gauge("boxoffice_db_connections_in_use", "PostgreSQL connections checked out now",
                  multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("boxoffice_db_connections_open", "PostgreSQL connections open (in use or idle)",
                     multiprocess_mode="livesum")
# What each check of the service's own found; each must stay at zero.
INTEGRITY_CHECKS = {
    # PostgreSQL refused a sale under UNIQUE (show_id, seat_id) or one booking per hold:
    # Redis had shown a sold seat (or a booked hold) as free. The sale was refunded and
    # Redis corrected; without that constraint a seat would have been sold twice.
    "sale_refused": "a sale refused by PostgreSQL: Redis showed a sold seat as free",
    # The reconciler found a committed booking whose seats Redis did not show as booked
    # (a process died between commit and mark, or Redis failed then) and marked them.
    "booking_unmarked": "a booking Redis did not show as booked (repaired by the reconciler)",
    # The reconciler's watch found money taken (a capture or a live authorization) on a
    # payment recorded as failed or refunded: a charge with neither booking nor refund.
    # It was refunded at once.
    "charge_unbooked": "a charge found with neither its booking nor its refund (refunded)",
}
INTEGRITY_VIOLATIONS = Counter("boxoffice_integrity_violations",
                               "Findings of the service's own checks that must stay zero", ["check"])
for _check in INTEGRITY_CHECKS:
    INTEGRITY_VIOLATIONS.labels(_check)  # every check exported from the start, at 0
PENDING_PAST_GRACE = Gauge("boxoffice_payments_pending_past_grace",
                           "Payments pending longer than the confirm grace (sampled by the reconciler)",
                           multiprocess_mode="livemax")
DEPENDENCY_UP = Gauge("boxoffice_dependency_up", "1 when the dependency answers its health probe",
                      ["dependency"], multiprocess_mode="livemin")
PROCESS_UP = Gauge("boxoffice_process_up", "1 per live service process (label pid with several workers)",
                   multiprocess_mode="liveall")


def multiproc_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


# -- from the scripts ---------------------------------------------------------------
QUEUE_WAITING = Gauge("boxoffice_queue_waiting", "Release queue tickets waiting, per show",
                      ["show_id"], multiprocess_mode="livemax")
QUEUE_SHOPPING = Gauge("boxoffice_queue_shopping", "Admitted buyers with an unused pass, per show",
                       ["show_id"], multiprocess_mode="livemax")
QUEUE_ADMISSIONS = Counter("boxoffice_queue_admissions", "Release queue tickets admitted", ["show_id"])
QUEUE_PASS_EXPIRIES = Counter("boxoffice_queue_pass_expiries", "Queue passes that lapsed unused", ["show_id"])
QUEUE_WAIT = Histogram("boxoffice_queue_wait_seconds", "From joining the release queue to admission",
                       ["show_id"], buckets=WAIT_BUCKETS)


def observe_queue(show_id: int, waiting: int, shopping: int, lapsed: int, waits_ms: list[Any]) -> None:
    """Records one tick of a show's release queue (lua/queue_admit-1.lua)."""
    label = str(show_id)
    QUEUE_WAITING.labels(label).set(waiting)
    QUEUE_SHOPPING.labels(label).set(shopping)
    if lapsed:
        QUEUE_PASS_EXPIRIES.labels(label).inc(lapsed)
    if waits_ms:
        QUEUE_ADMISSIONS.labels(label).inc(len(waits_ms))
        histogram = QUEUE_WAIT.labels(label)
        for ms in waits_ms:
            histogram.observe(max(0, int(ms)) / 1000)


def forget_queue(show_id: int) -> None:
    """A queue that ended leaves no stale gauges behind."""
    for gauge in (QUEUE_WAITING, QUEUE_SHOPPING):
        with contextlib.suppress(KeyError):
            gauge.remove(str(show_id))


def observe_script(answer: list[Any]) -> None:
    """Records what a show script reports beside its result (lua/includes/settle.lua)."""
    if len(answer) < 5:  # the lists are left out when both are empty
        return
    late, waits = answer[3], answer[4]
    for ms in late or ():
        EXPIRIES.inc()
        EXPIRY_LATENESS.observe(max(0, int(ms)) / 1000)
    for ms in waits or ():
        GRANTS.inc()
        WAITLIST_WAIT.observe(max(0, int(ms)) / 1000)


def integrity_violation(check: str, count: int = 1) -> None:
    """Counts `count` findings of one of INTEGRITY_CHECKS."""
    assert check in INTEGRITY_CHECKS, check
    if count:
        INTEGRITY_VIOLATIONS.labels(check).inc(count)


# -- API operations ------------------------------------------------------------------


# The labelled children, looked up once: labels() takes a lock and builds a tuple on every
# call, a few microseconds on every request of the hot paths. prometheus-client keeps the
# same children in its own table, so the values (and the multiprocess files) are the same.
_seconds_of: dict[str, Any] = {}
_count_of: dict[tuple[str, str], Any] = {}


def record_operation(operation: str, outcome: str, seconds: float) -> None:
    """Counts one operation by outcome and records its time (exact, immediately visible)."""
    histogram = _seconds_of.get(operation)
    if histogram is None:
        histogram = _seconds_of[operation] = OPERATION_SECONDS.labels(operation)
    histogram.observe(seconds)
    counter = _count_of.get((operation, outcome))
    if counter is None:
        counter = _count_of[(operation, outcome)] = OPERATIONS.labels(operation, outcome)
    counter.inc()


# -- pools ---------------------------------------------------------------------------


def _redis_pool_use(client: Any) -> tuple[int, int]:
    """(in use, limit) of a redis.asyncio client or cluster client; (0, 0) when unknown."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None and hasattr(pool, "_in_use_connections"):
        return len(pool._in_use_connections), int(pool.max_connections)
    get_nodes = getattr(client, "get_nodes", None)
    if get_nodes is None:
        return 0, 0
    in_use = limit = 0
    for node in get_nodes():
        connections, free = getattr(node, "_connections", []), getattr(node, "_free", [])
        in_use += len(connections) - len(free)
        limit += int(getattr(node, "max_connections", 0))
    return in_use, limit


def sample_pools(redis: Any, sql: Any) -> None:
    in_use, limit = _redis_pool_use(redis)
    REDIS_IN_USE.set(in_use)
    REDIS_POOL_MAX.set(limit)
    pool: Any = sql.pool
    checked_out = getattr(pool, "checkedout", None)
    if checked_out is not None:
        DB_IN_USE.set(checked_out())
        DB_POOL_SIZE.set(checked_out() + pool.checkedin())
    PROCESS_UP.set(1)


async def sample_pools_forever(redis: Any, sql: Any) -> None:
    """Each process samples its own pools: with several workers the gauges are summed."""
    while True:
        sample_pools(redis, sql)
        await asyncio.sleep(POOL_SAMPLE_INTERVAL_S)


# -- dependencies ---------------------------------------------------------------------


def record_dependencies(states: dict[str, str]) -> None:
    """{dependency: "ok" | "down"} from engine/health.py into boxoffice_dependency_up."""
    for dependency, state in states.items():
        DEPENDENCY_UP.labels(dependency).set(1 if state == "ok" else 0)


async def sample_dependencies_forever(redis: Any, sql: Any, cluster: bool) -> None:
    from boxoffice.engine import health

    while True:
        record_dependencies(await health.check_all(redis, sql, cluster))
        await asyncio.sleep(DEPENDENCY_SAMPLE_INTERVAL_S)


# -- seat states per show -------------------------------------------------------------


async def read_show_seats(redis: Any, keys: Keys, cluster: bool) -> dict[int, dict[str, int]]:
    """{show id: {stats field: value}} of the loaded shows (at most SHOW_READ_LIMIT of them)."""
    members = await redis.smembers(keys.loaded_shows)
    show_ids = sorted(int(m) for m in members)[-SHOW_READ_LIMIT:]  # the newest ids when over
    if not show_ids:
        return {}
    if cluster:
        # Each show's keys are in a slot of their own: one read per show, all at once.
        answers = await asyncio.gather(*(redis.hmget(keys.stats(s), *STATS_FIELDS) for s in show_ids))
    else:
        pipe = redis.pipeline(transaction=False)
        for show_id in show_ids:
            pipe.hmget(keys.stats(show_id), *STATS_FIELDS)
        answers = await pipe.execute()
    counts = {show_id: {field: int(value or 0) for field, value in zip(STATS_FIELDS, answer, strict=True)}
              for show_id, answer in zip(show_ids, answers, strict=True)}
    # A show an older release loaded has its seats in the meta hash only.
    for show_id in [s for s, answer in zip(show_ids, answers, strict=True) if answer[0] is None]:
        counts[show_id]["seats"] = int(await redis.hget(keys.show_keys(show_id)[0], "seat_count") or 0)
    for c in counts.values():
        c["free"] = c["seats"] - c["held"] - c["booked"]
    return counts


def show_seat_families(stats: dict[int, dict[str, int]]) -> list[GaugeMetricFamily]:
    per_show = GaugeMetricFamily("boxoffice_show_seats", f"Seats by state (free, held, booked) of the"
                                 f" {SHOW_GAUGE_LIMIT} loaded shows with the most waiters and holds",
                                 labels=["show_id", "state"])
    per_show_waiting = GaugeMetricFamily("boxoffice_show_waitlist_entries",
                                         "Waiting waitlist entries of the same shows", labels=["show_id"])
    totals = GaugeMetricFamily("boxoffice_seats", "Seats by state over every loaded show", labels=["state"])
    waiting = GaugeMetricFamily("boxoffice_waitlist_entries", "Waiting waitlist entries over every loaded show")
    busiest = sorted(stats.items(), key=lambda item: (-item[1]["waiting"], -item[1]["held"], item[0]))
    for show_id, counts in busiest[:SHOW_GAUGE_LIMIT]:
        for state in SEAT_STATES:
            per_show.add_metric([str(show_id), state], counts[state])
        per_show_waiting.add_metric([str(show_id)], counts["waiting"])
    for state in SEAT_STATES:
        totals.add_metric([state], sum(counts[state] for counts in stats.values()))
    waiting.add_metric([], sum(counts["waiting"] for counts in stats.values()))
    return [per_show, per_show_waiting, totals, waiting]


class _Families:
    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> list[GaugeMetricFamily]:
        return self.families


async def render_show_seats(redis: Any, keys: Keys, cluster: bool) -> bytes:
    """The seat-state gauges, read from Redis now; nothing when Redis does not answer in
    time (the scrape still shows everything else, and boxoffice_dependency_up says why)."""
    try:
        async with asyncio.timeout(SHOW_READ_TIMEOUT_S):
            seats = await read_show_seats(redis, keys, cluster)
    except Exception:
        return b""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(show_seat_families(seats)))  # type: ignore[arg-type]
    return generate_latest(registry)


# -- exposition ----------------------------------------------------------------------

_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def _forget_dead_processes(directory: str) -> None:
    """A killed worker never says goodbye: drop its live gauges (its counters stay, they
    are history) so the pool gauges add up the processes that exist now."""
    pids = set()
    for path in glob.glob(os.path.join(directory, "gauge_live*.db")):
        match = _PID_IN_NAME.search(path)
        if match:
            pids.add(int(match.group(1)))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            prometheus_multiprocess.mark_process_dead(pid, directory)
        except PermissionError:
            pass


def render() -> bytes:
    """The text exposition of every metric, all worker processes together."""
    directory = multiproc_dir()
    if directory is None:
        return generate_latest(REGISTRY)
    _forget_dead_processes(directory)
    registry = CollectorRegistry()
    prometheus_multiprocess.MultiProcessCollector(registry, path=directory)
    return generate_latest(registry)


def prepare_multiprocess_dir(directory: str) -> None:
    """Before the workers start: an empty directory (old files would add a past run's counts)."""
    os.makedirs(directory, exist_ok=True)
    for path in glob.glob(os.path.join(directory, "*.db")):
        os.remove(path)
