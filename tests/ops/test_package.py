"""The wheel, installed the way a user installs it, runs: built from a copy of the repository,
it holds the boxoffice package with its Lua scripts, SQL migrations and web page and nothing
else (no bench/, no tests/); installed into a fresh virtual environment, its `boxoffice`
command, run from a directory that is not the repository, reports the version of
pyproject.toml, serves embedded (browse, seat map, a hold, the web page) and, on the real
servers, migrates an empty database, seeds it and serves the same calls. So nothing the
service needs is read from the source tree or left out of the package data.

How it installs, and why that is a user's install: a user runs `python -m venv env` and
`env/bin/pip install boxoffice-<version>-py3-none-any.whl`, and pip downloads the dependencies.
Here the venv is made --without-pip and the test venv's pip installs the wheel into it
(`pip --python env/bin/python install --no-deps --no-index`): the same installer, unpacking,
RECORD and console script as the user's, in a second instead of the ten ensurepip takes. The
download is the only step left out: a .pth file written after the install puts the test
venv's site-packages (the same dependencies, installed from the same pyproject.toml) at the
end of the new venv's sys.path. A path line of a .pth file is only appended to sys.path: the
.pth files in that directory, among them the editable install's finder of the repository,
are not run; test_the_installed_package_is_the_wheel_not_the_source_tree proves it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import httpx
import pytest
from packaging.version import Version

from tests.support.services import ROOT, RedisServer, ServiceProcess, free_port, temporary_database

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
PACKAGE = ROOT / "boxoffice"
DIST_INFO = f"boxoffice-{VERSION}.dist-info/"
# The package data the service cannot run without (pyproject.toml, [tool.setuptools.package-data]).
PACKAGE_DATA = ("lua/*.lua", "lua/includes/*.lua", "sql/*.sql", "api/static/*")
# What is not source: the copy the wheel is built from leaves it out.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                    ".*_cache", ".hypothesis", "test-output", "*.sqlite3*")
COMMAND_TIMEOUT_S = 120.0
SERVICE_START_S = 30.0
CUSTOMER = "wheel@example.org"


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs a command to its end; fails with what it printed when it fails."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def recent_setuptools() -> bool:
    """Whether this venv's setuptools is the one [build-system] asks for (so no isolated build)."""
    try:
        return Version(metadata.version("setuptools")) >= Version("77")
    except metadata.PackageNotFoundError:
        return False


def build_wheel(source: Path, out: Path) -> Path:
    """`pip wheel` of a copy of the repository: a build in place would leave build/ and
    egg-info in the work tree, and a stale build/lib can slip removed files into a wheel.
    With the test extra's setuptools the build needs no network; without it pip makes an
    isolated build environment from the package registry."""
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE, symlinks=True)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out)]
    if recent_setuptools():
        command += ["--no-build-isolation", "--no-index"]
    run([*command, str(source)], cwd=source)
    (wheel,) = out.glob("*.whl")
    return wheel


def site_packages(python: Path) -> Path:
    done = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=python.parent)
    return Path(done.stdout.strip())


@dataclass(frozen=True)
class Installed:
    """A virtual environment the wheel is installed in."""

    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "boxoffice"


def install(wheel: Path, venv: Path) -> Installed:
    """A fresh venv (of the base interpreter, not of the test venv), the wheel installed by
    pip, then the test venv's dependencies made visible (see the module's docstring)."""
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=venv.parent)
    installed = Installed(venv)
    # Before the .pth: pip must see an empty environment, not the editable boxoffice of the test venv.
    run([sys.executable, "-m", "pip", "--python", str(installed.python), "install", "--no-deps", "--no-index",
         "--quiet", str(wheel)], cwd=venv.parent)
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site_packages(installed.python) / "_test_venv_dependencies.pth").write_text(
        "".join(f"{path}\n" for path in sorted(ours)), encoding="utf-8")
    return installed


def user_environment(installed: Installed, **variables: str) -> dict[str, str]:
    """A shell with the venv activated: none of the test runner's boxoffice settings, server
    URLs or Python variables, then `variables`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BOXOFFICE_", "PYTHON", "PIP_"))
           and k not in {"REDIS_URL", "DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR", "VIRTUAL_ENV"}}
    env.update(VIRTUAL_ENV=str(installed.venv), PATH=f"{installed.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    env.update(variables)
    return env


@contextlib.contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"boxoffice-{prefix}-") as name:
        yield Path(name)


@contextlib.contextmanager
def serving(installed: Installed, work: Path, env: dict[str, str]) -> Iterator[httpx.Client]:
    """`boxoffice serve` on a free port, started in `work`; a client of it once it answers
    /healthz with 200; stopped (SIGTERM, then SIGKILL after a bound) on exit."""
    port = free_port()
    log_path = work / f"serve-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(installed.command), "serve", "--port", str(port)], cwd=work, env=env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    service = ServiceProcess(process, f"http://127.0.0.1:{port}", log_path, process_group=True)
    try:
        service.wait_healthy(SERVICE_START_S)
        with httpx.Client(base_url=service.url, timeout=10.0) as http:
            yield http
    finally:
        service.stop()
    assert process.returncode in (0, -signal.SIGTERM), f"serve ended with {process.returncode}: {service.log()}"


def get_json(http: httpx.Client, path: str) -> Any:
    answer = http.get(path)
    assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text[:500]}"
    return answer.json()


def a_show_with_free_seats(http: httpx.Client) -> str:
    """Walks cities, a city's movies and a movie's shows as the web page does; the last show
    of a movie with two free seats (the latest: far from starting)."""
    cities = get_json(http, "/v1/cities")["cities"]
    assert cities, "the demo catalog has cities"
    for city in cities:
        for movie in get_json(http, f"/v1/cities/{city['id']}/movies")["movies"]:
            cinemas = get_json(http, f"/v1/cities/{city['id']}/movies/{movie['id']}/shows")["cinemas"]
            shows = [show for cinema in cinemas for show in cinema["shows"] if show["available"] >= 2]
            if shows:
                return str(max(shows, key=lambda show: show["starts_at"])["id"])
    raise AssertionError("no show of the demo catalog has two free seats")


def hold_two_seats(http: httpx.Client, show_id: str) -> None:
    """Two free standard seats of the seat map held: 201 with a hold id, the map shows them held."""
    seats = get_json(http, f"/v1/shows/{show_id}/seats")["seats"]
    chosen = [s["id"] for s in seats if s["status"] == "available" and s["kind"] == "standard"][:2]
    assert len(chosen) == 2, "the show has two free standard seats"
    answer = http.post(f"/v1/shows/{show_id}/holds", json={"seats": chosen, "customer": CUSTOMER})
    assert answer.status_code == 201, answer.text
    assert answer.json()["hold_id"] and sorted(answer.json()["seats"]) == sorted(chosen)
    after = {s["id"]: s["status"] for s in get_json(http, f"/v1/shows/{show_id}/seats")["seats"]}
    assert [after[seat] for seat in chosen] == ["held", "held"]


def check_web_page(http: httpx.Client) -> None:
    """The page and every file of the static directory, as the source tree has them."""
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.content == (PACKAGE / "api" / "static" / "index.html").read_bytes()
    referenced = set(re.findall(r'"/static/([\w.-]+)"', page.text))
    assert referenced, "the page loads its script and style from /static/"
    shipped = {path.name for path in (PACKAGE / "api" / "static").iterdir()}
    assert referenced <= shipped
    for name in sorted(shipped):
        answer = http.get(f"/static/{name}")
        assert answer.status_code == 200, f"/static/{name}: {answer.status_code}"
        assert answer.content == (PACKAGE / "api" / "static" / name).read_bytes()


def check_service(http: httpx.Client) -> None:
    assert get_json(http, "/healthz")["status"] == "ok"
    hold_two_seats(http, a_show_with_free_seats(http))
    check_web_page(http)


def source_files() -> set[str]:
    """The wheel entries the source tree asks for: every module and every package-data file."""
    files = {path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts}
    for pattern in PACKAGE_DATA:
        files |= set(PACKAGE.glob(pattern))
    return {f"boxoffice/{path.relative_to(PACKAGE).as_posix()}" for path in files}


@pytest.fixture(scope="module")
def wheel() -> Iterator[Path]:
    with scratch_directory("wheel") as scratch:
        yield build_wheel(scratch / "source", scratch / "dist")


@pytest.fixture(scope="module")
def installed(wheel: Path) -> Iterator[Installed]:
    with scratch_directory("venv") as scratch:
        yield install(wheel, scratch / "venv")


@pytest.fixture
def work() -> Iterator[Path]:
    """A directory that is not the repository, where the user runs the command."""
    with scratch_directory("work") as directory:
        yield directory


def test_the_wheel_holds_the_package_its_data_and_nothing_else(wheel: Path) -> None:
    assert wheel.name == f"boxoffice-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = [name for name in archive.namelist() if not name.endswith("/")]
        entry_points = archive.read(f"{DIST_INFO}entry_points.txt").decode()
    strays = [name for name in names if not name.startswith(("boxoffice/", DIST_INFO))]
    assert not strays, f"the wheel holds more than the package: {strays}"
    assert not [name for name in names if name.startswith(("bench/", "tests/", "boxoffice/tests/"))]
    missing = source_files() - set(names)
    assert not missing, f"the wheel lacks {sorted(missing)}"
    for pattern in PACKAGE_DATA:
        assert any(PurePosixPath(name).match(f"boxoffice/{pattern}") for name in names), f"no {pattern} in the wheel"
    assert "boxoffice = boxoffice.engine.cli:main" in entry_points


def test_the_installed_package_is_the_wheel_not_the_source_tree(installed: Installed, work: Path) -> None:
    probe = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "import boxoffice\n"
        "from boxoffice.api import app\n"
        "from boxoffice.engine import db\nfrom boxoffice.engine.redis import scripts\n"
        "dist = metadata.distribution('boxoffice')\n"
        "print(json.dumps({'files': [boxoffice.__file__, str(app.STATIC), str(scripts.LUA_DIR), str(db.SQL_DIR),\n"
        "                            str(dist.locate_file(''))],\n"
        "                  'direct_url': json.loads(dist.read_text('direct_url.json') or '{}'),\n"
        "                  'version': boxoffice.__version__, 'path': sys.path,\n"
        "                  'editable': [m for m in sys.modules if 'editable' in m]\n"
        "                              + [repr(f) for f in sys.meta_path if 'editable' in repr(f).lower()]}))\n"
    )
    found = json.loads(run([str(installed.python), "-c", probe], cwd=work, env=user_environment(installed)).stdout)
    site = site_packages(installed.python)
    assert all(Path(file).is_relative_to(site) for file in found["files"]), found["files"]
    assert "archive_info" in found["direct_url"], "installed from the wheel file, not editable"
    assert not found["editable"], "the editable install of the repository leaked in"
    test_venv = Path(sys.prefix).resolve()  # its site-packages is on the path on purpose, the repository is not
    assert not [entry for entry in found["path"] if entry and Path(entry).resolve().is_relative_to(ROOT)
                and not Path(entry).resolve().is_relative_to(test_venv)], found["path"]
    assert found["version"] == VERSION
    version = run([str(installed.command), "--version"], cwd=work, env=user_environment(installed))
    assert version.stdout.strip() == f"boxoffice {VERSION}"


def test_the_installed_command_serves_embedded(installed: Installed, work: Path) -> None:
    database = work / "embedded.sqlite3"
    env = user_environment(installed, BOXOFFICE_EMBEDDED_DB=str(database))
    with serving(installed, work, env) as http:
        check_service(http)
    assert database.exists(), "embedded mode keeps its catalog and sales in BOXOFFICE_EMBEDDED_DB"


def test_the_installed_command_migrates_seeds_and_serves_on_the_real_servers(installed: Installed,
                                                                            work: Path) -> None:
    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(temporary_database())
        redis = RedisServer.start()
        stack.callback(redis.stop)
        env = user_environment(installed, REDIS_URL=redis.url, DATABASE_URL=database_url,
                               BOXOFFICE_KEY_PREFIX=f"wheel{uuid.uuid4().hex[:10]}")
        migrations = len(list(PACKAGE.glob("sql/*.sql")))
        assert f"applied {migrations} migration(s)" in run([str(installed.command), "migrate"], work, env).stdout
        assert "seeded demo" in run([str(installed.command), "seed"], work, env).stdout
        with serving(installed, work, env) as http:
            check_service(http)
