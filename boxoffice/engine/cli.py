"""The `boxoffice` command: serve, migrate, seed."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime

from boxoffice import __version__
from boxoffice.engine import db, seed
from boxoffice.engine.settings import Settings


def _migrate(settings: Settings) -> None:
    async def run() -> list[str]:
        engine = db.create_engine(settings)
        try:
            return await db.migrate(engine)
        finally:
            await engine.dispose()

    applied = asyncio.run(run())
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none needed'}")


def _seed(settings: Settings, scale: str, seed_value: int, start: date) -> None:
    _migrate(settings)
    if settings.database_url is None and scale != "demo":
        sys.exit("the capacity scale needs PostgreSQL: set DATABASE_URL")
    began = time.monotonic()
    if scale == "demo":
        counts = asyncio.run(_seed_demo(settings, seed_value, start))
    else:
        sink = seed.PostgresSink(settings.database_url or "")
        if seed.has_catalog(sink):
            sink.finish()
            sys.exit("the database already holds a catalog; seed an empty database")
        counts = seed.load(sink, scale, seed_value, start, progress=True)
    summary = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"seeded {scale} (seed {seed_value}) in {time.monotonic() - began:.1f}s: {summary}")


async def _seed_demo(settings: Settings, seed_value: int, start: date) -> dict[str, int]:
    engine = db.create_engine(settings)
    try:
        if await seed.catalog_exists(engine):
            sys.exit("the database already holds a catalog; seed an empty database")
        return await seed.seed_demo(engine, seed_value, start)
    finally:
        await engine.dispose()


def _prepare_metrics_dir() -> None:
    """Several workers share their Prometheus metrics through files (engine/metrics.py):
    the directory must be set before the workers start, and empty."""
    from boxoffice.engine import metrics

    directory = os.environ.get(metrics.MULTIPROC_ENV)
    if not directory:
        directory = tempfile.mkdtemp(prefix="boxoffice-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = directory
        atexit.register(shutil.rmtree, directory, True)
    metrics.prepare_multiprocess_dir(directory)


def _serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    settings = Settings.from_env()
    if settings.embedded:
        print("embedded mode: in-process fakeredis and a local SQLite file "
              f"({settings.embedded_db_path}); set REDIS_URL and DATABASE_URL for the real servers")
        if workers > 1:
            sys.exit("embedded mode runs one worker: its Redis lives in the process")
    else:
        _migrate(settings)
    if workers > 1:
        _prepare_metrics_dir()
    print(f"boxoffice listening on http://{host}:{port}/  (open it in a browser)", flush=True)
    uvicorn.run("boxoffice.api.app:create_app", factory=True, host=host, port=port, workers=workers,
                log_level=os.environ.get("BOXOFFICE_LOG_LEVEL", "warning"), access_log=False)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="boxoffice", description=__doc__)
    parser.add_argument("--version", action="version", version=f"boxoffice {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default=os.environ.get("BOXOFFICE_HOST", "127.0.0.1"))
    serve.add_argument("--port", type=int, default=int(os.environ.get("BOXOFFICE_PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("BOXOFFICE_WORKERS", "1")))
    commands.add_parser("migrate", help="apply the SQL migrations not yet applied")
    seed_cmd = commands.add_parser("seed", help="load a deterministic catalog")
    seed_cmd.add_argument("--scale", choices=sorted(seed.SCALES), default="demo")
    seed_cmd.add_argument("--seed", type=int, default=1)
    seed_cmd.add_argument("--start-date", type=date.fromisoformat, default=datetime.now(UTC).date(),
                          help="first day of shows (default today, UTC)")
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args.host, args.port, args.workers)
        return
    settings = Settings.from_env()
    if args.command == "migrate":
        _migrate(settings)
    else:
        _seed(settings, args.scale, args.seed, args.start_date)


if __name__ == "__main__":
    main()
