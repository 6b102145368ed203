"""A tiny TCP forwarder the tests control, to simulate a database restart without touching the
real server: ``stop()`` drops every connection and refuses new ones, ``start()`` brings it back
on the same port, and ``close()`` releases the port. The port is held the whole time (a
``tests.loopback.Forwarder``), so nothing else can take it while the "server" is down."""

from __future__ import annotations

from tests.loopback import Forwarder


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._forwarder: Forwarder | None = None

    def start(self) -> None:
        if self._forwarder is None:
            self._forwarder = Forwarder(self.target)
            self.port = self._forwarder.port
        else:
            self._forwarder.resume()

    def stop(self) -> None:
        """Like a server going down: refuse new connections and reset the open ones."""
        if self._forwarder is not None:
            self._forwarder.pause()

    def close(self) -> None:
        """Stop for good and release the port."""
        if self._forwarder is not None:
            self._forwarder.close()
            self._forwarder = None
