"""A request head over the limits is refused with 431 before the app sees it, and one the HTTP
parser refuses gets a problem document with a code (sts/http/protocol.py).

Without the limits uvicorn buffers a head of any size, and a2wsgi joins repeated headers one
concatenation at a time on the event loop: 20 MB of them froze a worker, and its agents' waits,
for minutes. Each test speaks raw HTTP/1.1 to ``jobsts serve --production`` and then checks the
worker still answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from sts.http.protocol import MAX_HEAD_BYTES, MAX_HEADER_FIELDS
from tests.production.servers import StsProcess, raw_exchange, sqlite_sts, status_and_body

pytestmark = [pytest.mark.db]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StsProcess]:
    with sqlite_sts(tmp_path_factory.mktemp("head-limits")) as process:
        yield process


def _exchange(server: StsProcess, head: bytes) -> tuple[int, bytes]:
    # Every head here ends exactly where the server decides: nothing is left unread when it closes.
    return status_and_body(raw_exchange(server.port, head))


def _head(fields: int, pad: int = 8) -> bytes:
    """A GET /healthz head with ``fields`` header fields in all (Host included)."""
    lines = [b"GET /healthz HTTP/1.1", b"Host: 127.0.0.1", b"Connection: close"]
    lines += [b"X-Pad: " + b"a" * pad for _ in range(fields - 2)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _refused(body: bytes) -> str:
    return str(json.loads(body)["code"])


def test_the_most_header_fields_allowed_are_served(server: StsProcess) -> None:
    status, _ = _exchange(server, _head(MAX_HEADER_FIELDS))
    assert status == 200


def test_one_header_field_too_many_is_refused_with_431(server: StsProcess) -> None:
    status, body = _exchange(server, _head(MAX_HEADER_FIELDS + 1))
    assert (status, _refused(body)) == (431, "request.headers_too_large")
    assert server.client.get("/healthz").status_code == 200


def test_headers_over_the_byte_limit_are_refused_with_431(server: StsProcess) -> None:
    # Without the blank line that ends the head: the last field, the one over the limit, is the
    # last thing sent.
    head = _head(20, pad=MAX_HEAD_BYTES // 17)[: -len(b"\r\n")]
    assert len(head) > MAX_HEAD_BYTES
    status, body = _exchange(server, head)
    assert (status, _refused(body)) == (431, "request.headers_too_large")
    assert server.client.get("/healthz").status_code == 200


def test_a_head_that_never_ends_is_refused_once_over_the_limit(server: StsProcess) -> None:
    # One header line without its end: the parser holds it whole until the line ends, so only
    # the bytes read count it. Exactly one byte over: the refusal comes after the last read.
    start = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: "
    status, body = _exchange(server, start + b"a" * (MAX_HEAD_BYTES + 1 - len(start)))
    assert (status, _refused(body)) == (431, "request.headers_too_large")
    assert server.client.get("/healthz").status_code == 200


def test_a_request_target_over_the_limit_is_refused_with_431(server: StsProcess) -> None:
    status, body = _exchange(server, b"GET /healthz?" + b"a" * MAX_HEAD_BYTES)
    assert (status, _refused(body)) == (431, "request.headers_too_large")


SMUGGLING = {
    "two-content-lengths": b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
    "content-length-and-chunked": b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "chunked-not-last": b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "folded-header": b"X-A: a\r\n b\r\n\r\n",
    "space-before-colon": b"Content-Length : 3\r\n\r\nabc",
    "signed-length": b"Content-Length: +3\r\n\r\nabc",
}


@pytest.mark.parametrize("framing", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_an_ambiguous_or_malformed_request_is_refused_with_a_code(server: StsProcess, framing: bytes) -> None:
    status, body = _exchange(server, b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + framing)
    assert (status, _refused(body)) == (400, "request.malformed")
    assert server.client.get("/healthz").status_code == 200
