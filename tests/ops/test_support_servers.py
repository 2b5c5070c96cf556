"""The tests' own throwaway servers leave nothing behind, even when they fail to start."""

from __future__ import annotations

import socket

import pytest

from tests.support.services import RedisServer, free_port


def test_a_redis_server_that_never_answers_is_stopped_not_left_running() -> None:
    port = free_port()
    # It runs but refuses the readiness PING (a password is wanted): the start fails...
    with pytest.raises(RuntimeError, match="did not start"):
        RedisServer.start(port, "--requirepass", "never-given")
    # ...and nothing listens on its port afterwards.
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
