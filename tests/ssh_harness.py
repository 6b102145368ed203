"""A real OpenSSH server for tests: Debian's ``/usr/sbin/sshd`` in inetd mode, on loopback.

How it works: ``sts/commands/inetd_sshd.py`` (shared with ``jobsts demo``) keeps a listening
socket on 127.0.0.1 port 0 and starts one ``sshd -i`` per accepted connection. The server
has its own host keys (made with ``ssh-keygen`` in a private directory), its own
``sshd_config`` (password and public-key logins, no PAM, ``StrictModes yes``, only the
harness's test accounts may log in) and a log file (``server.log``).

Test accounts (root only): ``SshAccounts`` creates OS users with unique names, passwords
(``chpasswd``), authorized keys and sudoers drop-ins (checked with ``visudo -cf`` and
removed after); accounts that are never SSH targets get ``/usr/sbin/nologin`` and a locked
password. Cleanup kills, by pid, whatever the test accounts still run (never uid 0), then
removes the accounts, their homes and the drop-ins.

``python -m tests.ssh_harness`` starts the server by hand and prints its port and host key.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sts.commands.inetd_sshd import SSH_KEYGEN, SSHD, InetdSshd, keygen, prepare_privsep
from tests.os_accounts import account_tool

USER_PREFIX = "jssh"
HOST_KEY_TYPES = ("ed25519", "ecdsa")
IS_ROOT = os.geteuid() == 0
HAVE_SSHD = os.path.exists(SSHD) and os.path.exists(SSH_KEYGEN)

needs_sshd = [
    pytest.mark.root,
    pytest.mark.skipif(not IS_ROOT, reason="needs root to run sshd and create OS accounts"),
    pytest.mark.skipif(not HAVE_SSHD, reason="needs Debian's openssh-server (/usr/sbin/sshd)"),
]

CONFIG = """\
HostKey {directory}/ssh_host_ed25519_key
HostKey {directory}/ssh_host_ecdsa_key
PidFile none
UsePAM no
PasswordAuthentication yes
PubkeyAuthentication yes
KbdInteractiveAuthentication no
PermitRootLogin no
PermitEmptyPasswords no
AllowUsers {prefix}*
StrictModes yes
AuthorizedKeysFile .ssh/authorized_keys
PrintMotd no
PrintLastLog no
UseDNS no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
MaxAuthTries 3
LoginGraceTime 30
LogLevel VERBOSE
"""


class SshServer:
    """The harness's sshd: its own host keys and ``sshd_config``, checked with ``sshd -t``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.host_keys = {
            kind: keygen(directory / f"ssh_host_{kind}_key", kind, comment="host") for kind in HOST_KEY_TYPES
        }
        self.config = directory / "sshd_config"
        self.config.write_text(CONFIG.format(directory=directory, prefix=USER_PREFIX))
        self.log = directory / "server.log"
        check = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t refused the harness config: {check.stderr}")
        self._server = InetdSshd(self.config, self.log)
        self.address, self.port = self._server.address, self._server.port

    def host_key(self, kind: str = "ed25519") -> str:
        return self.host_keys[kind]

    def close(self) -> None:
        self._server.close()


class SshAccounts:
    """OS accounts for SSH tests, with unique names; removed, with their processes, at the end."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.users: list[str] = []
        self.groups: list[str] = []
        self.sudoers: list[Path] = []

    def user(self, *, password: str | None = None, authorized: tuple[str, ...] = (), login: bool = True,
             groups: tuple[str, ...] = ()) -> str:  # fmt: skip
        """A new account; ``login=False`` makes it nologin with a locked password."""
        name = f"{USER_PREFIX}{secrets.token_hex(4)}"
        home = Path(f"/tmp/{name}-home")
        shell = "/bin/sh" if login else "/usr/sbin/nologin"
        command = ["useradd", "-U", "-m", "-d", str(home), "-s", shell]
        if groups:
            command += ["-G", ",".join(groups)]
        account_tool([*command, name])
        self.users.append(name)
        if password is not None:
            account_tool(["chpasswd"], stdin=f"{name}:{password}\n")
        elif login:
            # "*": no password can match, but the account is not locked (sshd without PAM
            # refuses every login, keys included, to a "!"-locked account).
            account_tool(["usermod", "-p", "*", name])
        else:
            account_tool(["usermod", "-L", name])
        if authorized:
            entry = pwd.getpwnam(name)
            ssh_dir = home / ".ssh"
            ssh_dir.mkdir(mode=0o700)
            keys = ssh_dir / "authorized_keys"
            keys.write_text("\n".join(authorized) + "\n")
            keys.chmod(0o600)
            for path in (ssh_dir, keys):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        return name

    def group(self) -> str:
        name = f"{USER_PREFIX}g{secrets.token_hex(3)}"
        account_tool(["groupadd", name])
        self.groups.append(name)
        return name

    def sudoers_rule(self, text: str) -> Path:
        """Install a sudoers drop-in after ``visudo -cf`` accepted it (no "." in the name: sudo skips those)."""
        staged = self.directory / f"sudoers-{secrets.token_hex(4)}"
        staged.write_text(text)
        staged.chmod(0o440)
        checked = subprocess.run(["visudo", "-cf", str(staged)], capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"visudo refused the test rule: {checked.stdout}{checked.stderr}")
        target = Path("/etc/sudoers.d") / f"jobsts-test-{secrets.token_hex(4)}"
        shutil.copyfile(staged, target)
        target.chmod(0o440)
        self.sudoers.append(target)
        return target

    def processes(self, name: str) -> list[int]:
        """Pids of processes that run as ``name`` (real or effective uid)."""
        uid = pwd.getpwnam(name).pw_uid
        if uid == 0:  # never select root's processes
            return []
        found = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as status:
                    ids = next(line for line in status if line.startswith("Uid:")).split()[1:3]
            except (OSError, StopIteration):
                continue
            if str(uid) in ids:
                found.append(int(entry))
        return found

    def wait_for_no_processes(self, name: str, within: float = 30.0) -> list[int]:
        """Poll until ``name`` runs nothing (the sshd session ends a moment after the channel closes)."""
        until = time.monotonic() + within
        left = self.processes(name)
        while left and time.monotonic() < until:
            time.sleep(0.1)
            left = self.processes(name)
        return left

    def cleanup(self) -> None:
        for path in self.sudoers:
            path.unlink(missing_ok=True)
        for name in self.users:
            with contextlib.suppress(KeyError):
                for pid in self.processes(name):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            account_tool(["userdel", "-r", "-f", name], check=False)
            shutil.rmtree(f"/tmp/{name}-home", ignore_errors=True)
        for group in self.groups:
            account_tool(["groupdel", group], check=False)


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """One real sshd for the test session (skips unless root and openssh-server are there)."""
    if not (IS_ROOT and HAVE_SSHD):
        pytest.skip("needs root and Debian's openssh-server")
    prepare_privsep()
    directory = Path(tempfile.mkdtemp(prefix="jobsts-sshd-"))
    directory.chmod(0o700)
    server = SshServer(directory)
    try:
        yield server
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def ssh_accounts(tmp_path: Path) -> Iterator[SshAccounts]:
    if not IS_ROOT:
        pytest.skip("needs root to create OS accounts")
    made = SshAccounts(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()


def main() -> None:  # pragma: no cover - manual use
    prepare_privsep()
    directory = Path(tempfile.mkdtemp(prefix="jobsts-sshd-"))
    server = SshServer(directory)
    print(f"sshd on {server.address}:{server.port}; host key: {server.host_key()}; log {server.log}", flush=True)
    try:
        signal.pause()
    finally:
        server.close()


if __name__ == "__main__":  # pragma: no cover
    main()
