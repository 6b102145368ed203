"""The remote host of ``jobsts demo``: a private OpenSSH server on loopback and one login account.

Debian's ``/usr/sbin/sshd`` runs in inetd mode behind a loopback socket the demo keeps
(``inetd_sshd.py``); it has its own host key and
``sshd_config`` (password logins for the demo's account only, no PAM, no root login). The
account gets a random password, which the demo hands to the agent's credential store on
standard input and never prints. Everything is removed when the demo ends.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from sts.commands.inetd_sshd import SSH_KEYGEN, SSHD, InetdSshd, keygen, prepare_privsep

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
        self.host_key = keygen(directory / "ssh_host_ed25519_key", "ed25519", comment="jobsts-demo")
        config = directory / "sshd_config"
        config.write_text(CONFIG.format(directory=directory, user=self.user), encoding="ascii")
        prepare_privsep()
        subprocess.run(
            ["useradd", "-U", "-m", "-d", str(self.home), "-s", "/bin/sh", self.user],
            check=True,
            capture_output=True,
        )
        # Why: the password goes to chpasswd on stdin, never on a command line (ps shows those).
        subprocess.run(["chpasswd"], input=f"{self.user}:{self.password}\n", text=True, check=True, capture_output=True)
        self.server = InetdSshd(config, directory / "sshd.log", backlog=8)
        self.port = self.server.port

    def agent_toml(self, name: str) -> str:
        """The ``[remote_hosts.<name>]`` table for the agent that reaches this host."""
        return f'\n[remote_hosts.{name}]\naddress = "127.0.0.1"\nport = {self.port}\nhost_key = "{self.host_key}"\n'

    def close(self) -> None:
        self.server.close()
        subprocess.run(["userdel", "-r", "-f", self.user], check=False, capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)
