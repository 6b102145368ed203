"""Request bodies on the production server: a chunked body is read whole or refused, never cut
short or dropped (sts/http/bodies.py), and a body over the STS's usual limit is read only for a
caller whose agent token verifies (sts/http/text_inputs.py).

Each test speaks raw HTTP/1.1 to ``jobsts serve --production``, where Werkzeug alone would read
a chunked body as empty (a job, a login or a batch of results lost without a word) or stop at
the limit without a refusal.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.production.servers import StsProcess, raw_exchange, sqlite_sts, status_and_body

pytestmark = [pytest.mark.db]
# sts.max_body_bytes here: below uvicorn's 64 KiB read-ahead, so a refused request has been read
# whole when the server closes (unread bytes would reset the connection, the answer unread).
USUAL_LIMIT = 16 * 1024
SUBMISSION = {"node": "n1", "type": "shell", "spec": {"argv": ["/bin/true"]}}


@dataclass(frozen=True)
class Stack:
    server: StsProcess
    admin: str
    agent: str


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with sqlite_sts(tmp_path_factory.mktemp("bodies"), sts={"max_body_bytes": USUAL_LIMIT}) as server:
        admin = server.token("admin")
        yield Stack(server, admin, server.enrolled_agent(admin, "n1"))


def _send(server: StsProcess, head: list[str], body_parts: list[bytes]) -> tuple[int, Any]:
    """One request with ``Connection: close``, head and body (already framed) in one write; the
    status and JSON body."""
    lines = [*head, "Host: 127.0.0.1", "Connection: close"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + b"".join(body_parts)
    status, body = status_and_body(raw_exchange(server.port, request))
    return status, json.loads(body) if body else None


def _chunked(data: bytes, size: int = 7) -> list[bytes]:
    pieces = [data[start : start + size] for start in range(0, len(data), size)]
    return [b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces] + [b"0\r\n\r\n"]


def test_a_chunked_job_is_read_whole_and_queued(stack: Stack) -> None:
    head = [
        "POST /api/v1/jobs HTTP/1.1",
        f"Authorization: Bearer {stack.admin}",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
    ]
    status, body = _send(stack.server, head, _chunked(json.dumps(SUBMISSION).encode()))
    assert status == 201, body
    assert body["spec"]["argv"] == ["/bin/true"] and body["state"] == "queued"


def test_a_chunked_login_is_read_whole(stack: Stack) -> None:
    form = b"grant_type=password&username=john&password=john-password"
    head = [
        "POST /realms/jobmgr/token HTTP/1.1",
        "Content-Type: application/x-www-form-urlencoded",
        "Transfer-Encoding: chunked",
    ]
    status, body = _send(stack.server, head, _chunked(form))
    assert status == 200, body
    assert body["token_type"].lower() == "bearer"


def test_a_chunked_body_over_the_limit_is_refused_not_cut_short(stack: Stack) -> None:
    # The revocation's token parameter sits past the limit: cut short, the form would still parse.
    form = b"pad=" + b"a" * USUAL_LIMIT + b"&token=" + stack.admin.encode()
    head = [
        "POST /realms/jobmgr/revoke HTTP/1.1",
        "Content-Type: application/x-www-form-urlencoded",
        "Transfer-Encoding: chunked",
    ]
    status, body = _send(stack.server, head, _chunked(form, 4096))
    assert (status, body["error"], body["code"]) == (413, "invalid_request", "request.too_large")
    # Nothing was revoked: the admin's token still works.
    assert (
        stack.server.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {stack.admin}"}).status_code == 200
    )


@pytest.mark.parametrize("path", ["/api/v1/agent/results", "/api/v1/agent/leases", "/api/v1/agent/jobs/x/result"])
@pytest.mark.parametrize("token", ["none", "user"])
def test_a_large_agent_body_is_not_read_without_an_agent_token(stack: Stack, path: str, token: str) -> None:
    # Only the head is sent: were the body read first, the server would wait for it.
    head = [f"POST {path} HTTP/1.1", "Content-Type: application/json", f"Content-Length: {4 * USUAL_LIMIT}"]
    if token == "user":
        head.append(f"Authorization: Bearer {stack.admin}")
    status, body = _send(stack.server, head, [])
    assert status == 401, body
    assert body["code"] in {"auth.required", "token.type"}, body


def test_a_large_agent_body_is_read_for_an_agent(stack: Stack) -> None:
    document = json.dumps({"results": []}).encode() + b" " * (2 * USUAL_LIMIT)
    head = [
        "POST /api/v1/agent/results HTTP/1.1",
        f"Authorization: Bearer {stack.agent}",
        "Content-Type: application/json",
        f"Content-Length: {len(document)}",
    ]
    status, body = _send(stack.server, head, [document])
    # Read and parsed: an empty batch is the contract's refusal, not the size limit's.
    assert status == 400 and body["code"] != "request.too_large", body


def test_slow_bodies_hold_no_flask_thread(stack: Stack) -> None:
    # Twice as many unfinished bodies as the server has Flask threads (4), chunked and of known
    # length: were any of them read on a Flask thread, /healthz would wait behind them for good.
    submission = json.dumps(SUBMISSION).encode()
    held = []
    for index in range(8):
        sock = socket.create_connection(("127.0.0.1", stack.server.port), timeout=30)
        framing = "Transfer-Encoding: chunked" if index % 2 else f"Content-Length: {len(submission)}"
        head = (
            f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{framing}\r\n"
            f"Authorization: Bearer {stack.admin}\r\nContent-Type: application/json\r\n\r\n"
        )
        first = _chunked(submission[:5], 5)[0] if index % 2 else submission[:5]
        sock.sendall(head.encode("ascii") + first)
        held.append(sock)
    try:
        assert stack.server.client.get("/healthz").status_code == 200
        # The held requests are alive: one finished now is served whole.
        chunked = held[1]
        chunked.sendall(b"".join(_chunked(submission[5:])))
        answer = b""
        while chunk := chunked.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
    finally:
        for sock in held:
            sock.close()
