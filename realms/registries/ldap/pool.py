"""A bounded pool of open LDAP connections of one kind (the ``ldap`` registry keeps two).

A registry keeps service connections (bound as the service account, used for searches) and bind
connections (used for nothing but user binds) in two separate pools, because an LDAP
connection's authorization identity is whoever bound on it last (RFC 4513 §5.1): a connection
that carried a user's bind must never run a service search.

An idle connection the server has closed (a directory restart, an idle timeout) is found
before it is used: the server's close makes the socket readable, which an idle LDAP connection
never is otherwise. Such a connection, and every other idle one of the pool, is dropped and a
fresh one opened, so the first request after a restart already succeeds.
"""

from __future__ import annotations

import queue
import select
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ldap3 import Connection
from ldap3.core.exceptions import LDAPException


class ConnectionPool:
    """At most ``size`` connections made by ``open_``; ``borrow()`` lends one to a single thread."""

    def __init__(self, kind: str, size: int, open_: Callable[[], Connection], wait_seconds: float) -> None:
        self.kind = kind
        self._open = open_
        self._wait = wait_seconds
        self._idle: queue.LifoQueue[Connection] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    @contextmanager
    def borrow(self) -> Iterator[tuple[Connection, bool]]:
        """``(connection, reused)``; the connection goes back only if the block ends normally.

        Raises ``TimeoutError`` when every connection stays busy for the wait; whatever
        ``open_`` raises when a new connection cannot be made.
        """
        if not self._slots.acquire(timeout=self._wait):
            raise TimeoutError(f"all pooled {self.kind} connections are busy")
        try:
            conn, reused = self._take()
            healthy = False
            try:
                yield conn, reused
                healthy = True
            finally:
                if healthy and not self._closed:
                    self._idle.put(conn)
                else:
                    close_connection(conn)
        finally:
            self._slots.release()

    def _take(self) -> tuple[Connection, bool]:
        while True:
            try:
                conn = self._idle.get_nowait()
            except queue.Empty:
                return self._open(), False
            if is_alive(conn):
                return conn, True
            # Why: one dead idle connection means the server went away (or restarted); the
            # others were opened to the same server, so they go too instead of failing one
            # request each.
            close_connection(conn)
            self.drain()

    def idle(self) -> list[Connection]:
        """The idle connections (for tests and diagnostics)."""
        return list(self._idle.queue)

    def drain(self) -> None:
        """Close every idle connection; borrowed ones close when they are given back broken."""
        while True:
            try:
                close_connection(self._idle.get_nowait())
            except queue.Empty:
                return

    def close(self) -> None:
        self._closed = True
        self.drain()


def is_alive(conn: Connection) -> bool:
    """False if the idle connection's socket is closed or has anything to read (the server
    closed it, or sent a notice of disconnection, RFC 4511 §4.4.1)."""
    sock = conn.socket
    if conn.closed or sock is None:
        return False
    try:
        if getattr(sock, "pending", lambda: 0)():
            return False
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLERR | select.POLLHUP)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def close_connection(conn: Connection) -> None:
    """Unbind and close the socket; a connection that already broke is just dropped."""
    try:
        conn.unbind()
    except (LDAPException, OSError):
        pass
    # ldap3 keeps the socket of a failed open() on the connection; close it here.
    if conn.socket is not None:
        conn.socket.close()
