"""The race-free port helpers (tests/loopback.py) and the LDAP op counter (tests/ldap_proxy.py).

A test that picks a port by binding and closing fails now and then under load (EADDRINUSE, or
it talks to another suite's server). ``test_no_test_picks_a_port_by_bind_and_close`` keeps the
whole class out of tests/ and bench/; the others prove each helper holds its port.
"""

from __future__ import annotations

import ast
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ldap_proxy import BerError, op_name, split_messages
from tests.loopback import Forwarder, HeldPort, RefusedPort, listening_socket, port_of, socket_activation

ROOT = Path(__file__).resolve().parents[2]
# The sanctioned pick-and-close sites: slapd and Glewlwyd bind their own sockets and take no
# inherited one, so their launchers retry on a fresh port when the bind fails and prove the
# server answering is their own before use (tests/ldap_harness.py, bench/peers/glewlwyd_setup.py).
ALLOWED = {("tests/ldap_harness.py", "_candidate_port"), ("bench/peers/glewlwyd_setup.py", "_candidate_port")}
RACY_NAMES = {"free_port", "find_free_port", "unused_port", "get_free_port", "pick_port"}


def _binds_port_zero(node: ast.AST) -> bool:
    for call in ast.walk(node):
        if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "bind":
            if call.args and isinstance(call.args[0], ast.Tuple) and len(call.args[0].elts) == 2:
                port = call.args[0].elts[1]
                if isinstance(port, ast.Constant) and port.value == 0:
                    return True
    return False


def _closes_socket(function: ast.AST) -> bool:
    """A ``with socket.socket(...)`` block or an explicit ``.close()`` in the same function."""
    for node in ast.walk(function):
        if isinstance(node, ast.With):
            for item in node.items:
                if isinstance(item.context_expr, ast.Call) and "socket" in ast.unparse(item.context_expr.func):
                    return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "close":
            return True
    return False


def _returns_port(function: ast.AST) -> bool:
    return any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(function)) and "getsockname" in (
        ast.unparse(function)
    )


def racy_port_sites(root: Path) -> list[str]:
    found = []
    for path in sorted([*(root / "tests").rglob("*.py"), *(root / "bench").rglob("*.py")]):
        relative = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                if node.name in RACY_NAMES:
                    found.append(f"{relative}:{node.lineno} defines {node.name}()")
                elif (relative, node.name) not in ALLOWED and _binds_port_zero(node) and _closes_socket(node) \
                        and _returns_port(node):  # fmt: skip
                    found.append(f"{relative}:{node.lineno} {node.name}() binds port 0, closes, returns the port")
            elif isinstance(node, ast.Name | ast.Attribute) and getattr(node, "id", getattr(node, "attr", "")) in (
                RACY_NAMES
            ):
                found.append(f"{relative}:{node.lineno} uses {getattr(node, 'id', getattr(node, 'attr', ''))}")
    return found


def test_no_test_picks_a_port_by_bind_and_close() -> None:
    assert racy_port_sites(ROOT) == []


def test_the_rule_catches_the_racy_pattern(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "bench").mkdir()
    (tmp_path / "tests" / "bad.py").write_text(
        "import socket\n"
        "def pick() -> int:\n"
        "    with socket.socket() as sock:\n"
        "        sock.bind(('127.0.0.1', 0))\n"
        "        return sock.getsockname()[1]\n"
        "def free_port() -> int:\n"
        "    return 0\n"
    )
    assert len(racy_port_sites(tmp_path)) == 2


def _connect(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def _stranger_bind(port: int) -> None:
    with socket.socket() as stranger:
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        stranger.bind(("127.0.0.1", port))


def test_refused_port_refuses_and_stays_ours() -> None:
    with RefusedPort() as port:
        with pytest.raises(ConnectionRefusedError):
            _connect(port.port)
        with pytest.raises(OSError, match="in use"):
            _stranger_bind(port.port)


def test_held_port_can_stop_and_start_listening_without_ever_being_free() -> None:
    held = HeldPort()
    try:
        with pytest.raises(ConnectionRefusedError):
            _connect(held.port)
        for _ in range(2):
            listener = held.listen()
            _connect(held.port)
            with pytest.raises(OSError, match="in use"):
                _stranger_bind(held.port)
            listener.close()
            with pytest.raises(ConnectionRefusedError):
                _connect(held.port)
            with pytest.raises(OSError, match="in use"):
                _stranger_bind(held.port)
    finally:
        held.close()


def test_forwarder_pauses_resumes_and_follows_its_target() -> None:
    upstream = listening_socket()
    other = listening_socket()
    seen: list[tuple[int, bytes]] = []
    forwarder = Forwarder(("127.0.0.1", port_of(upstream)), observe=lambda n, data: seen.append((n, data)))
    try:
        with socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as client:
            served, _ = upstream.accept()
            with served:
                client.sendall(b"ping")
                assert served.recv(4) == b"ping"
                served.sendall(b"pong")
                assert client.recv(4) == b"pong"
        assert seen == [(1, b"ping")]
        forwarder.pause()
        with pytest.raises(ConnectionRefusedError):
            _connect(forwarder.port)
        with pytest.raises(OSError, match="in use"):
            _stranger_bind(forwarder.port)
        forwarder.target = ("127.0.0.1", port_of(other))
        forwarder.resume()
        with socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as client:
            served, _ = other.accept()
            with served:
                client.sendall(b"x")
                assert served.recv(1) == b"x"
    finally:
        forwarder.close()
        upstream.close()
        other.close()


ACTIVATED = """
import os, socket, sys
assert os.environ["LISTEN_PID"] == str(os.getpid()), "LISTEN_PID must be the server's own pid"
assert os.environ["LISTEN_FDS"] == "1"
sock = socket.socket(fileno=3)
print(sock.getsockname()[1], flush=True)
conn, _ = sock.accept()
conn.sendall(b"served")
conn.close()
"""


def test_socket_activation_hands_the_held_socket_to_the_server_as_fd_3() -> None:
    """What gunicorn reads (sd_listen_fds): fd 3, LISTEN_FDS=1 and LISTEN_PID = its own pid."""
    sock = listening_socket()
    try:
        argv, fds = socket_activation([sys.executable, "-c", ACTIVATED], sock)
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, pass_fds=fds) as process:
            try:
                assert process.stdout is not None
                assert int(process.stdout.readline()) == port_of(sock)
                with socket.create_connection(("127.0.0.1", port_of(sock)), timeout=10) as client:
                    assert client.recv(6) == b"served"
                assert process.wait(30) == 0
            finally:
                process.kill()
    finally:
        sock.close()


def test_ber_envelopes_split_across_chunks_and_long_lengths() -> None:
    search = bytes([0x30, 0x0C, 0x02, 0x01, 0x05, 0x63, 0x07]) + b"\x04\x00\x0a\x01\x02\x0a\x01"
    bind_long = bytes([0x30, 0x81, 0x07, 0x02, 0x02, 0x01, 0x00, 0x60, 0x01, 0x00])
    unbind = bytes([0x30, 0x05, 0x02, 0x01, 0x07, 0x42, 0x00])
    stream = search + bind_long + unbind
    buffer = bytearray()
    found: list[tuple[int, int]] = []
    for i in range(len(stream)):  # one byte at a time: every cut point
        buffer.append(stream[i])
        found += split_messages(buffer)
    assert [(mid, op_name(tag)) for mid, tag in found] == [
        (5, "searchRequest"), (256, "bindRequest"), (7, "unbindRequest"),
    ]  # fmt: skip
    assert buffer == bytearray()
    with pytest.raises(BerError):
        split_messages(bytearray(b"\x04\x00"))
