"""The Redis clients of a service process: one for commands and scripts, one for pub/sub
(the same fakeredis client in embedded mode, a cluster pair with BOXOFFICE_REDIS_CLUSTER)."""

from __future__ import annotations

from typing import Any

from boxoffice.engine.settings import Settings

# A dead or hung Redis must turn into a quick 503, not a request that hangs: short socket
# timeouts, and no retries by the client library. A command that timed out or lost its
# connection may have run: sending it again blindly would run a script twice. The scripts
# are idempotent by the id they act on instead, so the caller may repeat a call whose
# answer it lost (a 503 says so with Retry-After).
REDIS_CONNECT_TIMEOUT_S = 2.0
REDIS_SOCKET_TIMEOUT_S = 5.0

# Embedded mode: one in-process server per process, shared by every engine it opens.
_embedded_server: Any = None


def no_retry() -> Any:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return Retry(NoBackoff(), retries=0)


def make_redis(settings: Settings) -> tuple[Any, Any]:
    """(client for commands and scripts, client for pub/sub)."""
    if settings.embedded:
        import fakeredis

        global _embedded_server
        if _embedded_server is None:
            _embedded_server = fakeredis.FakeServer()
        client = fakeredis.FakeAsyncRedis(server=_embedded_server, decode_responses=True)
        return client, client
    assert settings.redis_url is not None
    timeouts = {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT_S, "socket_timeout": REDIS_SOCKET_TIMEOUT_S}
    if settings.redis_cluster:
        from boxoffice.engine.redis.cluster import make_cluster_clients

        return make_cluster_clients(settings.redis_url, settings.redis_pool_size, no_retry(), no_retry,
                                    REDIS_CONNECT_TIMEOUT_S, REDIS_SOCKET_TIMEOUT_S)
    from redis.asyncio import BlockingConnectionPool, Redis

    pool = BlockingConnectionPool.from_url(
        settings.redis_url, decode_responses=True, max_connections=settings.redis_pool_size, timeout=5,
        retry=no_retry(), **timeouts,
    )
    client = Redis(connection_pool=pool)
    # Subscriptions wait for messages indefinitely: no socket timeout on that client.
    return client, Redis.from_url(settings.redis_url, decode_responses=True,
                                  socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S, retry=no_retry())
