"""A client gets ``JOBSTS_REQUEST_HEAD_TIMEOUT`` seconds to send a whole request head, from its
connection's opening or from the first byte of each request (sts/http/protocol.py); after that
the server closes the connection. Without the limit, a connection that sends nothing, or half a
head, holds a socket and a file descriptor for good (slowloris).

The server here allows 5 s. A wait that lasts longer than that, its head sent at once, is
answered: the limit is on the head, never on the request's whole life.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sts.http.protocol import HEAD_TIMEOUT_ENV
from tests.production.servers import StsProcess, raw_exchange, sqlite_sts

pytestmark = [pytest.mark.db]
ALLOWED = 5


@dataclass(frozen=True)
class Stack:
    server: StsProcess
    agent: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with sqlite_sts(tmp_path_factory.mktemp("slow-clients"), env={HEAD_TIMEOUT_ENV: str(ALLOWED)}) as server:
        yield Stack(server, server.enrolled_agent(server.token("admin"), "n1"))


def _closed_by_server(server: StsProcess, sent: bytes) -> bytes:
    """What the server answered ``sent`` before it closed (the timeout, far past ``ALLOWED``,
    is only a guard against a hang)."""
    return raw_exchange(server.port, sent, timeout=6 * ALLOWED)


def test_a_connection_that_sends_nothing_is_closed(stack: Stack) -> None:
    assert _closed_by_server(stack.server, b"") == b""
    assert stack.server.client.get("/healthz").status_code == 200


def test_a_head_that_stops_halfway_is_closed(stack: Stack) -> None:
    assert _closed_by_server(stack.server, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ") == b""


def test_a_wait_longer_than_the_head_limit_is_answered(stack: Stack) -> None:
    head = (
        f"GET /api/v1/agent/wait?timeout={2 * ALLOWED} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {stack.agent}\r\nConnection: close\r\n\r\n"
    )
    answer = _closed_by_server(stack.server, head.encode("ascii"))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(b'{"work": false}'), answer[-200:]
