"""The remote host of ``jobsts demo``: a private OpenSSH server on loopback and one login account.

Debian's ``/usr/sbin/sshd`` runs in inetd mode (``sshd -i``), one process per connection, behind
a listening socket on 127.0.0.1 port 0 that the demo keeps; it has its own host key and
``sshd_config`` (password logins for the demo's account only, no PAM, no root login). The
account gets a random password, which the demo hands to the agent's credential store on
standard input and never prints. Everything is removed when the demo ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = "/usr/bin/ssh-keygen"
PREFIX = "jsdemo"
CONFIG = """\
HostKey {directory}/ssh_host_ed25519_key
PidFile none
UsePAM no
PasswordAuthentication yes
PubkeyAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
PermitEmptyPasswords no
AllowUsers {user}
StrictModes yes
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
MaxAuthTries 3
LoginGraceTime 30
"""


def unavailable_reason() -> str | None:
    """Why the remote step cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "it needs root (to run sshd and create a login account); run `sudo jobsts demo`"
    missing = [
        path for path in (SSHD, SSH_KEYGEN, "/usr/sbin/useradd", "/usr/sbin/chpasswd") if not os.path.exists(path)
    ]
    if missing:
        return f"{missing[0]} is missing; install Debian's openssh-server (and passwd)"
    return None


class DemoSshHost:
    """sshd for one demo account; ``host_key`` is the line an agent pins."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True)
        self.directory = directory
        self.user = f"{PREFIX}{secrets.token_hex(3)}"
        # Why /tmp and not $TMPDIR: the login's home must be reachable by the account itself, and
        # a private TMPDIR (mode 0700, as under pytest) is not. userdel -r removes it at the end.
        self.home = Path("/tmp") / f"{self.user}-home"  # noqa: S108
        self.password = secrets.token_urlsafe(24)
        key = directory / "ssh_host_ed25519_key"
        subprocess.run(
            [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "jobsts-demo", "-f", str(key)],
            check=True,
            capture_output=True,
        )
        self.host_key = key.with_name(key.name + ".pub").read_text(encoding="ascii").strip()
        self.config = directory / "sshd_config"
        self.config.write_text(CONFIG.format(directory=directory, user=self.user), encoding="ascii")
        # sshd needs its privilege-separation directory (made by the service unit normally).
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
        subprocess.run(
            ["useradd", "-U", "-m", "-d", str(self.home), "-s", "/bin/sh", self.user],
            check=True,
            capture_output=True,
        )
        # Why: the password goes to chpasswd on stdin, never on a command line (ps shows those).
        subprocess.run(["chpasswd"], input=f"{self.user}:{self.password}\n", text=True, check=True, capture_output=True)
        self._sessions: list[subprocess.Popen[bytes]] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="demo-sshd", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with connection:
                self._sessions.append(
                    subprocess.Popen(
                        [SSHD, "-i", "-f", str(self.config), "-E", str(self.directory / "sshd.log")],
                        stdin=connection.fileno(),
                        stdout=connection.fileno(),
                        stderr=subprocess.DEVNULL,
                        close_fds=True,
                    )
                )

    def agent_toml(self, name: str) -> str:
        """The ``[remote_hosts.<name>]`` table for the agent that reaches this host."""
        return f'\n[remote_hosts.{name}]\naddress = "127.0.0.1"\nport = {self.port}\nhost_key = "{self.host_key}"\n'

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(timeout=10)
        for session in self._sessions:
            if session.poll() is None:
                session.send_signal(signal.SIGTERM)  # by the pid we started
            with contextlib.suppress(subprocess.TimeoutExpired):
                session.wait(timeout=10)
        subprocess.run(["userdel", "-r", "-f", self.user], check=False, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)
