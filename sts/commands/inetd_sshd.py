"""A private OpenSSH server on loopback: Debian's ``/usr/sbin/sshd`` in inetd mode.

One listening socket on 127.0.0.1 port 0 that the owner keeps (so no other process can take
the port between choosing and using it); for each accepted connection, ``sshd -i -f CONFIG``
with the connection as stdin and stdout: one sshd per connection, nothing else listening.
``jobsts demo`` runs its remote host with it, and the tests' SSH harness builds on it.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")


def keygen(path: Path, key_type: str, passphrase: str = "", comment: str = "jobsts") -> str:
    """Make a key pair with ssh-keygen; returns the public key line."""
    subprocess.run(
        [SSH_KEYGEN, "-q", "-t", key_type, "-N", passphrase, "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text(encoding="ascii").strip()


def prepare_privsep() -> None:
    """sshd needs its privilege-separation directory (made by the service unit normally)."""
    PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)


class InetdSshd:
    """sshd behind a listening socket on loopback; ``close`` stops every session it started."""

    def __init__(self, config: Path, log: Path, *, backlog: int = 16) -> None:
        self.config, self.log = config, log
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(backlog)
        self.address = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        self._sessions: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="inetd-sshd", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                session = subprocess.Popen(
                    [SSHD, "-i", "-f", str(self.config), "-E", str(self.log)],
                    stdin=connection.fileno(),
                    stdout=connection.fileno(),
                    stderr=subprocess.DEVNULL,
                    close_fds=True,
                )
            with self._lock:
                self._sessions = [s for s in self._sessions if s.poll() is None]
                self._sessions.append(session)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=10)
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            if session.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    session.kill()  # by the pid we started
            with contextlib.suppress(subprocess.TimeoutExpired):
                session.wait(timeout=10)
