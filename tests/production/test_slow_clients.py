"""A client gets ``JOBSTS_REQUEST_HEAD_TIMEOUT`` seconds to send a whole request head, from its
connection's opening or from the first byte of each request (sts/http/protocol.py); after that
the server closes the connection. Without the limit, a connection that sends nothing, or half a
head, holds a socket and a file descriptor for good (slowloris).

The server here allows 5 s. A wait that lasts longer than that, its head sent at once, is
answered: the limit is on the head, never on the request's whole life.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from sts.http.protocol import HEAD_TIMEOUT_ENV
from tests.ldap_harness import ldif_realm_table
from tests.production.servers import StsProcess, write_sts_config

pytestmark = [pytest.mark.db]
ALLOWED = 5


@dataclass(frozen=True)
class Stack:
    server: StsProcess
    agent: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("slow-clients")
    config = write_sts_config(workdir, f"sqlite:///{workdir / 'sts.db'}", [ldif_realm_table("jobmgr")])
    server = StsProcess(config, workdir, 1, env={HEAD_TIMEOUT_ENV: str(ALLOWED)})
    try:
        server.wait_ready()
        admin = server.token("admin")
        yield Stack(server, server.agent_token("n1", server.register_node(admin, "n1")))
    finally:
        server.stop()


def _closed_by_server(server: StsProcess, sent: bytes) -> bytes:
    """Connect, send ``sent``, and read until the server closes; what it answered (the socket's
    own timeout, far past ``ALLOWED``, is only a guard against a hang)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=6 * ALLOWED) as sock:
        if sent:
            sock.sendall(sent)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


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
