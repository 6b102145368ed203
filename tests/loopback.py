"""Race-free loopback ports for tests: bind to port 0 and keep the socket.

Picking a port by binding to 0, closing, and handing the number to a server is a race: between
the close and the server's bind, anything else on the machine (another test, another suite)
may take the port, and then the server fails with EADDRINUSE or, worse, the test talks to the
wrong server. Every helper here holds the socket from the moment the kernel picks the port:

* ``listening_socket()``: a listening socket on a fresh port, for an in-process server
  (werkzeug ``make_server(..., fd=sock.fileno())``) or for a child that inherits it
  (``socket_activation`` for gunicorn, ``werkzeug_fd_environment`` for ``jobsts serve``).
* ``RefusedPort``: a port that is bound but never listens, so connecting is refused at once,
  and nobody else can start listening there while the test runs.
* ``HeldPort``: a port reserved for the test's lifetime that can stop and start listening
  (a service "restart") without ever being free for someone else to take in between.
* ``AcceptLoop``: a held port whose thread hands each connection to ``handle``; the base of
  ``Listener`` (records every connection; a defence holds if it stays empty) and of the fake
  directory of ``tests/ldap_harness.py``.
* ``Forwarder``: a TCP forwarder on a ``HeldPort`` that may be paused (refusing), resumed,
  pointed at a new target, and can watch what clients send (``tests/ldap_proxy.py``).
"""

from __future__ import annotations

import selectors
import socket
import sys
import threading
from collections.abc import Callable

HOST = "127.0.0.1"


def listening_socket(host: str = HOST, backlog: int = 128) -> socket.socket:
    """A TCP socket bound to a port the kernel picks on ``host`` and already listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


class RefusedPort:
    """A loopback port bound and held but never listening: connections are refused (RST) at once.

    No ``SO_REUSEADDR``: so nothing else can bind it, not even with that option, until ``close()``.
    """

    def __init__(self, host: str = HOST) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.port = port_of(self.sock)
        self.host = host

    def url(self, scheme: str) -> str:
        return f"{scheme}://{self.host}:{self.port}"

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RefusedPort:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _reuseport_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class HeldPort:
    """A loopback port that belongs to the test until ``close()``, listening or not.

    A placeholder socket with ``SO_REUSEPORT`` stays bound (never listening) the whole time.
    ``listen()`` opens a second ``SO_REUSEPORT`` socket on the same port that does listen; closing
    it makes connections refused again, while the placeholder keeps the port: Linux lets only
    sockets of the same user that also set ``SO_REUSEPORT`` share it, which no server the tests
    start does, and ``bind(0)`` never hands it out.
    """

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self._placeholder = _reuseport_socket()
        self._placeholder.bind((host, 0))
        self.port = port_of(self._placeholder)

    def listen(self, backlog: int = 128) -> socket.socket:
        """A new socket listening on the held port (close it to refuse connections again)."""
        sock = _reuseport_socket()
        sock.bind((self.host, self.port))
        sock.listen(backlog)
        return sock

    def url(self, scheme: str) -> str:
        return f"{scheme}://{self.host}:{self.port}"

    def close(self) -> None:
        self._placeholder.close()


_ACTIVATE = (
    "import fcntl, os, sys; n = int(sys.argv[1]); fds = [int(fd) for fd in sys.argv[2 : 2 + n]]; "
    "high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 1000) for fd in fds]; [os.close(fd) for fd in fds]; "
    "[os.dup2(fd, 3 + i) for i, fd in enumerate(high)]; [os.close(fd) for fd in high]; "
    "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(n)); os.execvp(sys.argv[2 + n], sys.argv[2 + n :])"
)


def socket_activation(argv: list[str], *socks: socket.socket) -> tuple[list[str], tuple[int, ...]]:
    """Run ``argv`` with ``socks`` as its systemd socket-activation sockets (fd 3, 4, ... in order).

    Gunicorn (``gunicorn ...`` and ``jobsts serve --production``) takes its listeners from
    ``LISTEN_FDS``/``LISTEN_PID`` (sd_listen_fds(3)) instead of binding, so the ports the test
    holds are the ports it serves. ``LISTEN_PID`` must be the server's own pid, so a small Python
    step moves the sockets to fd 3 onwards, sets both variables and ``exec``s the server in its
    own process. Returns (argv, pass_fds) for ``subprocess.Popen``.
    """
    fds = tuple(sock.fileno() for sock in socks)
    return [sys.executable, "-c", _ACTIVATE, str(len(fds)), *map(str, fds), *argv], fds


def werkzeug_fd_environment(sock: socket.socket) -> dict[str, str]:
    """Environment that makes werkzeug's ``run_simple`` (``jobsts serve``) serve on ``sock``.

    ``run_simple`` takes the listening socket from ``WERKZEUG_SERVER_FD`` when it believes it
    runs under its reloader (``WERKZEUG_RUN_MAIN=true``); pass ``sock.fileno()`` in pass_fds.
    """
    return {"WERKZEUG_RUN_MAIN": "true", "WERKZEUG_SERVER_FD": str(sock.fileno())}


class AcceptLoop:
    """A loopback TCP server on a held port: a thread accepts each connection and hands it to
    ``handle`` (closed afterwards); ``close`` stops the thread and frees the port."""

    def __init__(self, backlog: int = 16, accept_timeout: float = 0.1) -> None:
        self.sock = listening_socket(backlog=backlog)
        self.sock.settimeout(accept_timeout)
        self.port = port_of(self.sock)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    self.handle(conn)
                except OSError:
                    pass  # the client went away; the next connection is served as usual

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class Listener(AcceptLoop):
    """A loopback TCP listener on a held port that records what each connection sends first;
    a defence holds if ``connections`` stays empty."""

    def __init__(self) -> None:
        self.url = ""
        self.connections: list[bytes] = []
        super().__init__()
        self.url = f"http://{HOST}:{self.port}/keys.json"

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(0.5)
        try:
            self.connections.append(conn.recv(65536))
        except OSError:
            self.connections.append(b"")


Observer = Callable[[int, bytes], None]
Rewriter = Callable[[bytes], bytes]


class Forwarder:
    """Forwards each connection to its held loopback port to ``target``.

    ``observe(number, data)`` sees every chunk a client sends, before it is forwarded
    (connections are numbered from 1 in accept order), and ``rewrite(data)`` may then change it
    (a request the server should have been sent differently); ``closed`` lists the numbers of the
    connections that have ended (all their client sent was observed before that). ``pause()``
    drops every connection and refuses new ones, ``resume()`` accepts again, on the same port:
    the port is never free in between.
    An unreachable target drops the client at once, as a server that went away would.
    """

    def __init__(
        self, target: tuple[str, int], observe: Observer | None = None, rewrite: Rewriter | None = None
    ) -> None:
        self.target = target
        self.observe = observe
        self.rewrite = rewrite
        self.held = HeldPort()
        self.port = self.held.port
        self.closed: list[int] = []
        self._count = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.resume()

    def url(self, scheme: str) -> str:
        return self.held.url(scheme)

    @property
    def accepted(self) -> int:
        """How many connections were accepted so far (numbered 1..accepted)."""
        with self._lock:
            return self._count

    def resume(self) -> None:
        if self._listener is not None:
            return
        listener = self.held.listen()
        listener.settimeout(0.1)
        self._listener = listener
        self._stop = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, args=(listener, self._stop), daemon=True)
        self._acceptor.start()

    def pause(self) -> None:
        listener, self._listener = self._listener, None
        self._stop.set()
        if listener is not None:
            # Why shutdown first: it stops listening at once (the placeholder keeps the port),
            # whereas close() alone waits for the accepting thread's poll to let go of it.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if self._acceptor is not None:
                self._acceptor.join(5)
            listener.close()
        with self._lock:
            dropped, self._open = self._open, set()
        for sock in dropped:
            _shut(sock)

    def close(self) -> None:
        self.pause()
        for thread in self._threads:
            thread.join(5)
        self.held.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self._lock:
                self._count += 1
                number = self._count
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _shut(client)
                self._closed(number)
                continue
            with self._lock:
                self._open.update((client, upstream))
            thread = threading.Thread(target=self._pump, args=(number, client, upstream), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _closed(self, number: int) -> None:
        with self._lock:
            self.closed.append(number)

    def _pump(self, number: int, client: socket.socket, upstream: socket.socket) -> None:
        peer = {client: upstream, upstream: client}
        with selectors.DefaultSelector() as selector:
            for sock in peer:
                selector.register(sock, selectors.EVENT_READ)
            try:
                while True:
                    for key, _ in selector.select(timeout=0.5):
                        ready = key.fileobj
                        assert isinstance(ready, socket.socket)
                        data = ready.recv(65536)
                        if not data:
                            return
                        if ready is client and self.observe is not None:
                            self.observe(number, data)
                        if ready is client and self.rewrite is not None:
                            data = self.rewrite(data)
                        peer[ready].sendall(data)
                    if client.fileno() < 0 or upstream.fileno() < 0:
                        return
            except (OSError, ValueError):
                return
            finally:
                for sock in peer:
                    _shut(sock)
                with self._lock:
                    self._open.difference_update(peer)
                self._closed(number)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


__all__ = [
    "HOST",
    "Forwarder",
    "HeldPort",
    "Listener",
    "RefusedPort",
    "listening_socket",
    "port_of",
    "socket_activation",
    "werkzeug_fd_environment",
]
