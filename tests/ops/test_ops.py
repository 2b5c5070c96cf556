"""ops/: the Prometheus rules are valid and do what ops/prometheus/rules.test.yml says
(promtool); the dashboard is well formed; and a real Prometheus, with the shipped scrape
configuration and rules, scrapes a real service of two workers and Debian's Redis and
PostgreSQL exporters under a short rush, after which every query of the Grafana dashboard
(ops/grafana/boxoffice.json) answers with a number, every series the rule unit tests feed
in exists for real with its labels, nothing fires, and a killed Redis makes its alert
pending."""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import math
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from tests.support.backends import settings_on_empty_sales
from tests.support.services import ROOT, RedisServer, ServiceProcess, free_port, service_environment

OPS = ROOT / "ops"
RULES = OPS / "prometheus" / "rules.yml"
DEBIAN_PACKAGE = {"promtool": "prometheus", "prometheus": "prometheus",
                  "prometheus-redis-exporter": "prometheus-redis-exporter",
                  "prometheus-postgres-exporter": "prometheus-postgres-exporter"}
SCRAPE_INTERVAL = "1s"
HOLD_TTL_S = 2  # short: a hold of the load expires, and hands its seat to a waiter, in the run
QUEUE_PASS_S = 2  # short: a pass of the load lapses unused in the run
QUEUE_OPENS_IN_S = 3  # the queued show's sales open this long after the rush starts
DASHBOARD_DEADLINE_S = 30.0


def tool(name: str) -> str:
    """The tool's path; a missing tool fails the test by name (never a silent skip)."""
    path = shutil.which(name)
    assert path, f"{name} is missing: apt-get install {DEBIAN_PACKAGE[name]} (./dev.sh test installs it)"
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=OPS / "prometheus", capture_output=True, text=True, timeout=60)


def test_promtool_checks_the_rules_and_the_config_and_runs_the_rule_unit_tests() -> None:
    promtool = tool("promtool")
    for args in (("check", "rules", "rules.yml"), ("check", "config", "prometheus.yml"),
                 ("test", "rules", "rules.test.yml")):
        done = run(promtool, *args)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


def test_every_alert_has_unit_tests_that_fire_it_and_keep_it_quiet() -> None:
    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"] if "alert" in rule}
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load((OPS / "prometheus" / "rules.test.yml").read_text())["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts - fired == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"
    readme = (OPS / "README.md").read_text()
    for rule in (r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r):
        # The runbook annotation points at the README's heading of the alert.
        assert rule["annotations"]["runbook"] == f"ops/README.md#{rule['alert'].lower()}", rule["alert"]
        assert f"\n### {rule['alert']}\n" in readme, rule["alert"]


# -- a real Prometheus -----------------------------------------------------------------


@contextlib.contextmanager
def started(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_answering(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, f"{url} exited: {log.read_text(errors='replace')[-2000:]}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        assert time.monotonic() < deadline, f"{url} did not answer: {log.read_text(errors='replace')[-2000:]}"
        time.sleep(0.1)  # polling a process start


def scrape_config(service: str, redis_exporter: str, postgres_exporter: str) -> dict[str, Any]:
    """The shipped configuration with this run's targets and a short interval."""
    config = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL)
    config["rule_files"] = [str(RULES)]
    targets = {"boxoffice": service, "redis": redis_exporter, "postgres": postgres_exporter}
    assert {job["job_name"] for job in config["scrape_configs"]} == set(targets)
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    return config


def test_the_dashboard_is_well_formed() -> None:
    dashboard = json.loads((OPS / "grafana" / "boxoffice.json").read_text())
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels), "unique panel ids"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        place = panel["gridPos"]
        assert place["x"] + place["w"] <= 24, panel["title"]
        cells = {(place["x"] + dx, place["y"] + dy) for dx in range(place["w"]) for dy in range(place["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, expression) of every query of the dashboard."""
    dashboard = json.loads((OPS / "grafana" / "boxoffice.json").read_text())
    queries = [(panel["title"], target["expr"]) for panel in dashboard["panels"]
               for target in panel.get("targets", [])]
    assert len(queries) > 20
    for _title, expr in queries:
        assert "$" not in expr, f"a dashboard variable the test cannot fill in: {expr}"
    return queries


def a_show(database_url: str, skip: int = 0) -> tuple[int, list[str]]:
    """An open future show of a small hall (the `skip`+1-th), and its seat ids."""
    with psycopg.connect(database_url) as conn:
        show_id, hall_id = conn.execute(
            "SELECT s.id, s.hall_id FROM shows s JOIN halls h ON h.id = s.hall_id"
            " WHERE s.starts_at > now() + interval '2 hours' AND h.seat_count BETWEEN 60 AND 400"
            " AND s.sale_opens_at IS NULL ORDER BY s.id LIMIT 1 OFFSET %s", (skip,)).fetchone()  # type: ignore[misc]
        seats = [row[0] for row in conn.execute(
            "SELECT id FROM seats WHERE hall_id = %s ORDER BY id", (hall_id,))]
    return int(show_id), seats


@contextlib.contextmanager
def sales_opening_soon(database_url: str, show_id: int) -> Iterator[None]:
    """The show's sales open QUEUE_OPENS_IN_S from now, behind its release queue; on sale
    now again afterwards (the show belongs to the shared test database). Set before the
    service first loads the show."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE shows SET sale_opens_at = now() + make_interval(secs => %s) WHERE id = %s",
                     (QUEUE_OPENS_IN_S, show_id))
        try:
            yield
        finally:
            conn.execute("UPDATE shows SET sale_opens_at = NULL WHERE id = %s", (show_id,))


class QueueRush:
    """Customers of a show behind its release queue, stepped by the Rush: they join, and
    once admitted hold a seat with the pass and release it, or let the pass lapse."""

    def __init__(self, rush: Rush, show_id: int, seats: list[str]) -> None:
        self.rush = rush
        self.show_id = show_id
        self.seats = seats
        self.tickets: dict[str, str] = {}  # waiting ticket -> customer
        self.admitted = 0

    def step(self, i: int) -> None:
        joined = self.rush.request("POST", f"/v1/shows/{self.show_id}/queue", json={"customer": f"q{i}@example.org"})
        if joined.status_code == 201:
            self.tickets[joined.json()["ticket_id"]] = f"q{i}@example.org"
        for ticket_id, customer in list(self.tickets.items()):
            ticket = self.rush.request("GET", f"/v1/queue/{ticket_id}").json()
            if ticket.get("status") == "waiting":
                continue
            del self.tickets[ticket_id]
            if ticket.get("status") != "admitted":
                continue
            self.admitted += 1
            if self.admitted % 2 == 0:
                held = self.rush.request("POST", f"/v1/shows/{self.show_id}/holds",
                                         json={"seats": [self.seats[i % len(self.seats)]], "customer": customer},
                                         headers={"X-Queue-Pass": ticket["pass"]["token"]})
                if held.status_code == 201:
                    self.rush.request("DELETE", f"/v1/holds/{held.json()['hold_id']}")
            # The other admitted customers let their passes lapse.


class Rush:
    """A short rush on one show, in a thread, until stopped: seat maps, holds released,
    refusals, holds left to expire with a waiter behind them, and confirms paid or declined.
    Prometheus needs the counters to move while it scrapes them (a rate needs two samples
    of a series that already existed), so the load goes on while the test queries."""

    def __init__(self, base: str, show_id: int, seats: list[str], queued: tuple[int, list[str]]) -> None:
        self.http = httpx.Client(base_url=base, timeout=10)
        self.queue = QueueRush(self, *queued)
        self.show_id = show_id
        self.reused, self.expiring, self.fresh = seats[:10], seats[10:20], iter(seats[20:])
        self.stopped = threading.Event()
        self.statuses: collections.Counter[int] = collections.Counter()
        self.thread = threading.Thread(target=self._run, name="rush", daemon=True)

    def hold(self, customer: str, *seats: str) -> httpx.Response:
        return self.request("POST", f"/v1/shows/{self.show_id}/holds",
                            json={"seats": list(seats), "customer": customer})

    def confirm(self, hold_id: str, token: str) -> httpx.Response:
        return self.request("POST", f"/v1/holds/{hold_id}/confirm",
                            json={"payment": {"method": "card", "token": token}},
                            headers={"Idempotency-Key": f"order-{uuid.uuid4().hex}"})

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.http.request(method, path, **kwargs)
        self.statuses[answer.status_code] += 1
        return answer

    def _run(self) -> None:
        booked = next(self.fresh)
        held = self.hold("first@example.org", booked)
        assert held.status_code == 201, held.text
        assert self.confirm(held.json()["hold_id"], "tok_ok").status_code == 201
        for i in itertools.count():
            if self.stopped.is_set():
                return
            self.request("GET", f"/v1/shows/{self.show_id}/seats")
            self.hold(f"taker{i}@example.org", booked)  # 409 seats_unavailable: sold
            released = self.hold(f"browser{i}@example.org", self.reused[i % len(self.reused)])
            if released.status_code == 201:
                self.request("DELETE", f"/v1/holds/{released.json()['hold_id']}")
            self.queue.step(i)
            if i % 4 == 0:
                # Left to expire (HOLD_TTL_S), with a waiter behind it who gets the seat.
                self.hold(f"late{i}@example.org", self.expiring[(i // 4) % len(self.expiring)])
                self.request("POST", f"/v1/shows/{self.show_id}/waitlist",
                             json={"count": 1, "customer": f"waiter{i}@example.org"})
                seat = next(self.fresh, None)  # a sold seat stays sold: a small hall runs out
                paid = self.hold(f"buyer{i}@example.org", seat) if seat else None
                if paid is not None and paid.status_code == 201:
                    self.confirm(paid.json()["hold_id"], "tok_ok" if i % 8 == 0 else "tok_decline")
            self.stopped.wait(0.1)

    def __enter__(self) -> Rush:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(15)
        self.http.close()


def query(prometheus: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = prometheus.get("/api/v1/query", params={"query": expr})
    assert answer.status_code == 200, (expr, answer.text)
    return list(answer.json()["data"]["result"])


def test_prometheus_scrapes_the_service_and_every_dashboard_query_answers(database_url: str) -> None:
    prometheus_bin = tool("prometheus")
    redis_exporter_bin = tool("prometheus-redis-exporter")
    postgres_exporter_bin = tool("prometheus-postgres-exporter")
    began = time.monotonic()
    show_id, seats = a_show(database_url)
    queued = a_show(database_url, skip=1)
    with contextlib.ExitStack() as stack:
        stack.enter_context(sales_opening_soon(database_url, queued[0]))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="boxoffice-ops-")))
        # A Redis of its own: the test kills it at the end, to see the alert on it.
        redis = RedisServer.start()
        stack.callback(redis.stop)
        settings = settings_on_empty_sales(redis.url, database_url, "ops", hold_ttl_s=HOLD_TTL_S,
                                           reconcile_interval_s=1.0)
        (work / "worker-metrics").mkdir()  # prometheus-client needs it when it is imported
        service = ServiceProcess.start(
            # The default confirm grace (30 s): a confirm slowed by a busy machine is no stuck one.
            service_environment(settings, "reconcile_interval_s", BOXOFFICE_QUEUE_PASS_S=str(QUEUE_PASS_S),
                                PROMETHEUS_MULTIPROC_DIR=str(work / "worker-metrics")), work / "service.log",
            module_args=["boxoffice.engine.cli", "serve", "--workers", "2"], log_stdout=True, process_group=True)
        stack.callback(service.stop)
        service.wait_healthy(30)

        redis_port, postgres_port, prometheus_port = free_port(), free_port(), free_port()
        postgres_dsn = database_url + ("&" if "?" in database_url else "?") + "sslmode=disable"
        redis_exporter = stack.enter_context(started(
            [redis_exporter_bin, "-redis.addr", redis.url, "-web.listen-address", f"127.0.0.1:{redis_port}"],
            work / "redis-exporter.log"))
        postgres_exporter = stack.enter_context(started(
            [postgres_exporter_bin, f"--web.listen-address=127.0.0.1:{postgres_port}"],
            work / "postgres-exporter.log", env={"DATA_SOURCE_NAME": postgres_dsn}))
        wait_answering(f"http://127.0.0.1:{redis_port}/metrics", redis_exporter, work / "redis-exporter.log")
        wait_answering(f"http://127.0.0.1:{postgres_port}/metrics", postgres_exporter, work / "postgres-exporter.log")

        config = scrape_config(service.url.removeprefix("http://"), f"127.0.0.1:{redis_port}",
                               f"127.0.0.1:{postgres_port}")
        (work / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        server = stack.enter_context(started(
            [prometheus_bin, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}", "--storage.tsdb.retention.time=1h"],
            work / "prometheus.log"))
        prometheus = stack.enter_context(httpx.Client(base_url=prometheus_url, timeout=5))
        wait_answering(f"{prometheus_url}/-/ready", server, work / "prometheus.log")

        with Rush(service.url, show_id, seats, queued) as rush:
            missing = wait_for_dashboard(prometheus)
            busy = still_idle(prometheus)
        assert not missing, f"dashboard queries without data: {missing}"
        assert not busy, f"rates still 0: {busy}"
        assert rush.statuses[201] and rush.statuses[409] and rush.statuses[402], rush.statuses
        assert not any(status >= 500 for status in rush.statuses), rush.statuses
        targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
        assert sorted((t["labels"]["job"], t["health"]) for t in targets) == [
            ("boxoffice", "up"), ("postgres", "up"), ("redis", "up")]
        rules = prometheus.get("/api/v1/rules").json()["data"]["groups"]
        assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
        # A quiet rush fires nothing; only expiry lateness may go pending on a machine
        # busy with other work (the sweepers are then late, as the alert says).
        assert {name for name, _state in alerts(prometheus)} <= {"BoxofficeHoldExpiryLate"}, alerts(prometheus)
        assert_unit_tests_use_real_series(prometheus)
        # The counters of the checks that must stay zero are there, at zero.
        for sample in integrity_samples(service.url):
            assert sample.endswith(" 0.0"), sample

        # Redis dies: the exporter and the service's own probe both say so, and the alert
        # is pending (it fires after its minute).
        redis.kill()
        deadline = time.monotonic() + 15
        while not (("BoxofficeRedisDown", "pending") in alerts(prometheus)
                   and has_data(query(prometheus, 'min(boxoffice_dependency_up{dependency="redis"}) == 0'))):
            assert time.monotonic() < deadline, (alerts(prometheus), query(prometheus, "boxoffice_dependency_up"))
            time.sleep(0.5)  # Prometheus evaluates every second
    assert time.monotonic() - began < 60


def alerts(prometheus: httpx.Client) -> list[tuple[str, str]]:
    """(alert, state) of every alert pending or firing."""
    answer = prometheus.get("/api/v1/alerts").json()["data"]["alerts"]
    return sorted((alert["labels"]["alertname"], alert["state"]) for alert in answer)


def assert_unit_tests_use_real_series(prometheus: httpx.Client) -> None:
    """Every series the rule unit tests feed in has the name and the label names of a
    series the running service or an exporter exports: a rule proven on invented series
    is proven on the real ones too."""
    cases = yaml.safe_load((OPS / "prometheus" / "rules.test.yml").read_text())["tests"]
    fed = {case_series["series"] for case in cases for case_series in case["input_series"]}
    for series in sorted(fed):
        name, _, labels = series.partition("{")
        wanted = set(re.findall(r'(\w+)="', labels)) - {"job", "instance"}
        found = query(prometheus, f'{{__name__="{name}"}}')
        assert found, f"no series named {name} in the real run"
        assert any(wanted <= set(s["metric"]) for s in found), (series, [s["metric"] for s in found][:3])


def still_idle(prometheus: httpx.Client) -> list[str]:
    """Polls until the rush's rates are all above 0 (or the deadline): those still at 0. A
    counter's first increase in a worker can be what starts its series, which a rate does
    not count: the next one shows."""
    deadline = time.monotonic() + DASHBOARD_DEADLINE_S
    busy = ['boxoffice:operations:rate1m{operation="hold"}', "boxoffice:waitlist_grants:rate1m",
            "boxoffice:hold_expiries:rate1m", "boxoffice:queue_admissions:rate1m"]
    while True:
        busy = [expr for expr in busy if not any(float(r["value"][1]) > 0 for r in query(prometheus, expr))]
        if not busy or time.monotonic() > deadline:
            return busy
        time.sleep(0.5)  # Prometheus evaluates every second


def has_data(result: list[dict[str, Any]]) -> bool:
    """A series with a number: a quantile of nothing observed in its window is NaN."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


def wait_for_dashboard(prometheus: httpx.Client) -> list[tuple[str, str]]:
    """Polls until every dashboard query returns a series with a number (or the deadline):
    the panels whose queries still return none."""
    deadline = time.monotonic() + DASHBOARD_DEADLINE_S
    pending = dashboard_queries()
    while True:
        pending = [(title, expr) for title, expr in pending if not has_data(query(prometheus, expr))]
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(0.5)  # Prometheus scrapes every second


def integrity_samples(base: str) -> list[str]:
    """The integrity-violation samples of the service's /metrics."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    samples = [line for line in text.splitlines() if line.startswith("boxoffice_integrity_violations_total{")]
    assert len(samples) == 3, samples
    return samples
