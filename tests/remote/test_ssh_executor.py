"""The SSH executor against a REAL OpenSSH server (root only): logins, sudo, host keys, kills.

Every test makes its own OS accounts on the harness's sshd; after a cancel or a timeout the
test proves that no process of the remote account survived.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent_client.config import Limits
from agent_client.credentials.store import Secret
from agent_client.executors.base import ExecResult
from agent_client.remote.hosts import RemoteHost, parse_host_key
from agent_client.remote.ssh import RemoteTarget, run_remote_job
from realms.wire.spec import JobSpec
from sts.commands.inetd_sshd import keygen
from tests.ssh_harness import SshAccounts, SshServer, needs_sshd

pytestmark = needs_sshd

PASSWORD = "correct horse battery"


def host_of(sshd: SshServer, kind: str = "ed25519", **changes: object) -> RemoteHost:
    host = RemoteHost("web1", sshd.address, parse_host_key(sshd.host_key(kind)), sshd.port, 10)
    return replace(host, **changes)  # type: ignore[arg-type]


def spec(*argv: str, **changes: object) -> JobSpec:
    return replace(JobSpec(tuple(argv), {}, None, 60, None), **changes)  # type: ignore[arg-type]


def run(host: RemoteHost, secret: Secret, job: JobSpec, sudo_user: str | None = None, **kw: object) -> ExecResult:
    return run_remote_job(RemoteTarget(host, secret, sudo_user), job, Limits(kill_grace=1.0), **kw)  # type: ignore[arg-type]


@pytest.fixture
def client_keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """(private key file, public line): ed25519 without, ecdsa and rsa with a passphrase."""
    keys = {}
    for kind, passphrase in (("ed25519", ""), ("ecdsa", "open sesame"), ("rsa", "open sesame")):
        path = tmp_path / f"id_{kind}"
        keys[kind] = (path, keygen(path, kind, passphrase))
    return keys


def test_password_login_runs_the_job_with_output_exit_status_and_environment(
    sshd: SshServer, ssh_accounts: SshAccounts
) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    job = spec("/bin/sh", "-c", 'id -un; pwd; echo "$GREETING"; env | sort; echo to-stderr >&2; exit 7',
               env={"GREETING": "hello there", "LD_PRELOAD": "/evil.so"}, cwd="/tmp")  # fmt: skip
    result = run(host_of(sshd), Secret("k", user, password=PASSWORD), job)
    assert (result.code, result.exit_code) == (None, 7)
    lines = result.stdout_tail.splitlines()
    assert lines[:3] == [user, "/tmp", "hello there"]
    env = dict(line.split("=", 1) for line in lines[3:])
    assert env == {"GREETING": "hello there", "HOME": f"/tmp/{user}-home", "LOGNAME": user, "USER": user,
                   "PATH": "/usr/local/bin:/usr/bin:/bin", "PWD": "/tmp", "SHELL": "/bin/sh"}  # fmt: skip
    assert result.stderr_tail == "to-stderr\n"  # the wrapper's pgid line is not part of the job's output
    assert result.dropped_env == ["LD_PRELOAD"]


def test_arguments_are_never_parsed_by_the_remote_shell(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    tricky = ["a b", "'quoted'", '"dq"', "$(touch /tmp/pwned-by-arg)", "; echo injected", "\\back", "*"]
    result = run(host_of(sshd), Secret("k", user, password=PASSWORD), spec("/usr/bin/printf", "%s\n", *tricky))
    assert result.exit_code == 0
    assert result.stdout_tail.splitlines() == tricky
    assert not Path("/tmp/pwned-by-arg").exists()


def test_key_login(sshd: SshServer, ssh_accounts: SshAccounts, client_keys: dict[str, tuple[Path, str]]) -> None:
    path, public = client_keys["ed25519"]
    user = ssh_accounts.user(authorized=(public,))  # no password at all: the key is the only way in
    result = run(host_of(sshd), Secret("k", user, private_key=path.read_text()), spec("/usr/bin/id", "-un"))
    assert (result.code, result.exit_code, result.stdout_tail) == (None, 0, f"{user}\n")


@pytest.mark.parametrize("kind", ["ecdsa", "rsa"])
def test_key_with_passphrase_login(
    sshd: SshServer, ssh_accounts: SshAccounts, client_keys: dict[str, tuple[Path, str]], kind: str
) -> None:
    path, public = client_keys[kind]
    user = ssh_accounts.user(authorized=(public,))
    secret = Secret("k", user, private_key=path.read_text(), passphrase="open sesame")
    result = run(host_of(sshd), secret, spec("/usr/bin/id", "-un"))
    assert (result.code, result.stdout_tail) == (None, f"{user}\n")
    wrong = run(host_of(sshd), replace(secret, passphrase="wrong"), spec("/usr/bin/id", "-un"))
    assert wrong.code == "credential.wrong_password" and "passphrase" in (wrong.reason or "")


def test_key_not_authorized_is_refused(
    sshd: SshServer, ssh_accounts: SshAccounts, client_keys: dict[str, tuple[Path, str]]
) -> None:
    user = ssh_accounts.user(password=PASSWORD)  # password only: the key is not in authorized_keys
    path, _ = client_keys["ed25519"]
    result = run(host_of(sshd), Secret("k", user, private_key=path.read_text()), spec("/bin/true"))
    assert result.code == "remote.auth_failed" and "authorized_keys" in (result.reason or "")


def test_wrong_password_is_refused_and_nothing_runs(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    marker = Path(f"/tmp/{user}-home/ran")
    result = run(host_of(sshd), Secret("k", user, password="not the password"), spec("/usr/bin/touch", str(marker)))
    assert result.code == "credential.wrong_password"
    assert "password is incorrect" in (result.reason or "") and "credentials add k" in (result.reason or "")
    assert not marker.exists()


def test_wrong_host_key_is_refused_before_any_credential_is_sent(
    sshd: SshServer, ssh_accounts: SshAccounts, tmp_path: Path
) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    impostor = parse_host_key(keygen(tmp_path / "other_host_key", "ed25519"))
    before = sshd.log.read_text() if sshd.log.exists() else ""
    result = run(host_of(sshd, host_key=impostor), Secret("k", user, password=PASSWORD), spec("/bin/true"))
    assert result.code == "remote.host_key_mismatch"
    assert impostor.fingerprint in (result.reason or "")
    # The server never saw a login attempt: no password went to a host we could not identify.
    after = sshd.log.read_text()[len(before) :]
    assert user not in after


def test_server_without_a_key_of_the_pinned_type_is_a_mismatch(
    sshd: SshServer, ssh_accounts: SshAccounts, tmp_path: Path
) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    rsa_pin = parse_host_key(keygen(tmp_path / "rsa_host_key", "rsa"))  # the server has ed25519 and ecdsa only
    result = run(host_of(sshd, host_key=rsa_pin), Secret("k", user, password=PASSWORD), spec("/bin/true"))
    assert result.code == "remote.host_key_mismatch"


def test_pinning_the_servers_other_key_type_works(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    result = run(host_of(sshd, "ecdsa"), Secret("k", user, password=PASSWORD), spec("/usr/bin/id", "-un"))
    assert (result.code, result.stdout_tail) == (None, f"{user}\n")


def test_unreachable_host(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    import socket

    with socket.socket() as holder:  # a bound port with nothing listening: connection refused
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        result = run(host_of(sshd, port=port), Secret("k", "nobody", password="x"), spec("/bin/true"))
    assert result.code == "remote.unreachable"


def test_sudo_without_password(
    sshd: SshServer, ssh_accounts: SshAccounts, client_keys: dict[str, tuple[Path, str]]
) -> None:
    path, public = client_keys["ed25519"]
    target = ssh_accounts.user(login=False)  # the common user: nologin, locked
    login = ssh_accounts.user(authorized=(public,))
    ssh_accounts.sudoers_rule(f"{login} ALL=({target}) NOPASSWD: ALL\n")
    secret = Secret("k", login, private_key=path.read_text())
    result = run(host_of(sshd), secret, spec("/bin/sh", "-c", 'id -un; echo "$HOME"; cat'), sudo_user=target)
    assert (result.code, result.exit_code) == (None, 0)
    assert result.stdout_tail == f"{target}\n/tmp/{target}-home\n"


def test_sudo_with_password_and_the_password_never_reaches_the_job(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    target = ssh_accounts.user(login=False)
    login = ssh_accounts.user(password=PASSWORD)
    ssh_accounts.sudoers_rule(f"{login} ALL=({target}) ALL\n")
    # `cat` would print anything left on stdin: the password went to sudo's prompt only.
    job = spec("/bin/sh", "-c", "id -un; cat; ps -eo args")
    result = run(host_of(sshd), Secret("k", login, password=PASSWORD), job, sudo_user=target)
    assert (result.code, result.exit_code) == (None, 0), result
    assert result.stdout_tail.splitlines()[0] == target
    assert PASSWORD not in result.stdout_tail + result.stderr_tail  # not on stdin, not on any command line


def test_sudo_with_a_wrong_password_says_so(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    target = ssh_accounts.user(login=False)
    login = ssh_accounts.user(password=PASSWORD)
    # targetpw: sudo wants the (locked) target's password, so the credential's password, right
    # for the SSH login, is wrong for sudo.
    ssh_accounts.sudoers_rule(f"Defaults:{login} targetpw\n{login} ALL=({target}) ALL\n")
    marker = Path(f"/tmp/{target}-home/ran")
    result = run(host_of(sshd), Secret("k", login, password=PASSWORD), spec("/usr/bin/touch", str(marker)),
                 sudo_user=target)  # fmt: skip
    assert result.code == "credential.wrong_password"
    assert "sudo" in (result.reason or "") and "password is incorrect" in (result.reason or "")
    assert not marker.exists()


def test_sudo_to_a_user_the_login_may_not_become(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    target = ssh_accounts.user(login=False)
    login = ssh_accounts.user(password=PASSWORD)  # no sudoers rule at all
    result = run(host_of(sshd), Secret("k", login, password=PASSWORD), spec("/bin/true"), sudo_user=target)
    assert result.code == "remote.sudo_failed" and "sudoers" in (result.reason or ""), result


def test_sudo_needing_a_password_with_a_key_credential_fails_cleanly(
    sshd: SshServer, ssh_accounts: SshAccounts, client_keys: dict[str, tuple[Path, str]]
) -> None:
    path, public = client_keys["ed25519"]
    target = ssh_accounts.user(login=False)
    login = ssh_accounts.user(password=PASSWORD, authorized=(public,))
    ssh_accounts.sudoers_rule(f"{login} ALL=({target}) ALL\n")
    result = run(host_of(sshd), Secret("k", login, private_key=path.read_text()), spec("/bin/true"), sudo_user=target)
    assert result.code == "remote.sudo_failed" and "password is required" in (result.reason or "")


def test_missing_working_directory_is_exec_cwd(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    result = run(host_of(sshd), Secret("k", user, password=PASSWORD), spec("/bin/true", cwd="/nonexistent/dir"))
    assert result.code == "exec.cwd" and "/nonexistent/dir" in (result.reason or "")


def _running(ssh_accounts: SshAccounts, user: str, count: int) -> None:
    until = time.monotonic() + 60
    while time.monotonic() < until:
        if len(ssh_accounts.processes(user)) >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"the remote job of {user} did not start")


def _appears(path: Path) -> None:
    until = time.monotonic() + 60
    while time.monotonic() < until and not path.exists():
        time.sleep(0.05)


def test_cancel_kills_the_remote_process_group(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    cancel = threading.Event()
    results: list[ExecResult] = []
    # The job says "started" once both sleeps run, then leaves a marker: the test cancels only
    # after that (counting processes alone let a cancel under load come before the echo).
    marker = Path(tempfile.gettempdir()) / f"jobsts-{user}-started"
    marker.unlink(missing_ok=True)
    job = spec("/bin/sh", "-c", f"sleep 600 & sleep 600 & echo started; : > {marker}; wait")
    worker = threading.Thread(
        target=lambda: results.append(run(host_of(sshd), Secret("k", user, password=PASSWORD), job, cancel=cancel))
    )
    worker.start()
    try:
        _running(ssh_accounts, user, 4)  # sshd session, wrapper, job shell, two sleeps (at least)
        _appears(marker)
    finally:
        cancel.set()
        marker_seen = marker.exists()
        marker.unlink(missing_ok=True)
    assert marker_seen
    worker.join(60)
    assert results and results[0].code == "exec.cancelled" and results[0].exit_code is None
    assert "started" in results[0].stdout_tail
    assert ssh_accounts.wait_for_no_processes(user) == []


def test_timeout_kills_a_job_that_ignores_sigterm(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    job = spec("/bin/sh", "-c", "trap '' TERM; sleep 600 & sleep 600 & wait; wait", timeout=2)
    result = run(host_of(sshd), Secret("k", user, password=PASSWORD), job)
    assert result.code == "exec.timeout" and "killed" in (result.reason or "")
    assert ssh_accounts.wait_for_no_processes(user) == []


def test_background_children_do_not_outlive_the_job(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    job = spec("/bin/sh", "-c", "sleep 600 >/dev/null 2>&1 & echo done")
    result = run(host_of(sshd), Secret("k", user, password=PASSWORD), job)
    assert (result.code, result.exit_code, result.stdout_tail) == (None, 0, "done\n")
    assert ssh_accounts.wait_for_no_processes(user) == []


def test_output_is_bounded(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    user = ssh_accounts.user(password=PASSWORD)
    job = spec("/bin/sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a; echo; echo end")
    result = run_remote_job(RemoteTarget(host_of(sshd), Secret("k", user, password=PASSWORD)), job,
                            Limits(output_bytes=4096))  # fmt: skip
    assert result.exit_code == 0 and len(result.stdout_tail) == 4096 and result.stdout_tail.endswith("end\n")


def test_a_broken_connection_kills_the_remote_job(sshd: SshServer, ssh_accounts: SshAccounts) -> None:
    """The agent dies mid-job: the wrapper sees end of input and kills the job's group."""
    from agent_client.remote.command import remote_command
    from agent_client.remote.ssh import connect

    user = ssh_accounts.user(password=PASSWORD)
    transport = connect(host_of(sshd), Secret("k", user, password=PASSWORD))
    channel = transport.open_session()
    channel.exec_command(remote_command(["/bin/sh", "-c", "sleep 600 & sleep 600; wait"], {}, None))
    _running(ssh_accounts, user, 4)
    transport.sock.close()  # no goodbye: as if the agent's host lost power
    transport.close()
    assert ssh_accounts.wait_for_no_processes(user) == []
