"""Embedded mode's first run: the local SQLite file migrated, and seeded with the demo
catalog when it holds none (the same question the seed command asks, engine/seed.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from boxoffice.engine import db, seed

log = logging.getLogger(__name__)


async def prepare_embedded(sql: AsyncEngine) -> None:
    """Migrates the local SQLite file and seeds it once."""
    await db.migrate(sql)
    if not await seed.catalog_exists(sql):
        await seed.seed_demo(sql, 1, datetime.now(UTC).date())
        log.info("embedded database seeded with demo data at %s", sql.url.database)
