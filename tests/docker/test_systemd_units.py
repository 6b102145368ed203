"""docker/systemd/: the units as files. Each hardening key is checked; ``systemd-analyze verify``
and ``systemd-analyze security --offline`` read them as systemd does (their ExecStart prefix
/opt/jobsts is pointed at this virtualenv); ``systemd-sysusers`` makes the STS's account.
PID 1 here is not systemd: test_systemd_sandbox.py runs the programs inside what of the units'
sandbox works without it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.docker.systemd_units import (
    AGENT_CAPABILITIES,
    INSTALL_PREFIX,
    SYSTEMD_ANALYZE,
    UNITS,
    VENV_BIN,
    agent_unit,
    exec_start,
    last,
    parse_unit,
    sts_unit,
    uses_seccomp,
    words,
)
from tests.e2e.harness import jobsts

# --- the hardening, key by key -------------------------------------------------------------


def test_the_sts_runs_unprivileged_with_no_capability() -> None:
    unit = sts_unit()
    assert last(unit, "User") not in (None, "root", "0")
    assert last(unit, "CapabilityBoundingSet") == "" and words(unit, "CapabilityBoundingSet") == set()
    assert last(unit, "AmbientCapabilities") == ""
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "PrivateDevices": "yes", "PrivateUsers": "yes", "PrivateMounts": "yes", "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "ProtectClock": "yes", "ProtectHostname": "yes", "ProtectProc": "invisible", "ProcSubset": "pid",
        "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RemoveIPC": "yes",
        "SystemCallArchitectures": "native", "SystemCallErrorNumber": "EPERM", "UMask": "0077",
        "StateDirectory": "jobsts", "StateDirectoryMode": "0700", "Restart": "on-failure",
    }.items():  # fmt: skip
        assert last(unit, key) == value, key
    assert words(unit, "RestrictAddressFamilies") == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert unit["Service"]["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    # The master key is read-only even to the service; the database lives in the StateDirectory.
    assert "-/var/lib/jobsts/master.key" in unit["Service"]["ReadOnlyPaths"]


def test_the_agent_keeps_only_what_setuid_and_kill_need() -> None:
    unit = agent_unit()
    assert last(unit, "User") is None  # root: the setuid executor
    assert words(unit, "CapabilityBoundingSet") == AGENT_CAPABILITIES
    assert last(unit, "AmbientCapabilities") == ""
    assert last(unit, "NoNewPrivileges") == "yes"
    assert last(unit, "KillMode") == "mixed"
    for key, value in {
        "ProtectSystem": "full", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "ProtectClock": "yes", "ProtectHostname": "yes",
        "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes", "RestrictRealtime": "yes", "LockPersonality": "yes",
        "SystemCallArchitectures": "native", "SystemCallFilter": "@system-service", "SystemCallErrorNumber": "EPERM",
        "StateDirectoryMode": "0700",
    }.items():  # fmt: skip
        assert last(unit, key) == value, key
    # Jobs inherit the sandbox: what would break users' ordinary work stays off.
    for key in (
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "MemoryDenyWriteExecute",
        "PrivateUsers",
        "ProtectProc",
        "UMask",
    ):
        assert last(unit, key) is None, key


def test_the_sudo_executor_drop_in_runs_as_a_service_account_without_no_new_privileges() -> None:
    unit = agent_unit("sudo-executor.conf")
    assert last(unit, "User") == "jobsts-agent"
    assert last(unit, "NoNewPrivileges") == "no"  # sudo is set-user-ID
    assert words(unit, "AmbientCapabilities") == {"CAP_KILL"} <= words(unit, "CapabilityBoundingSet")
    assert words(unit, "CapabilityBoundingSet") - AGENT_CAPABILITIES == {"CAP_AUDIT_WRITE"}
    # No seccomp-based setting is left, or systemd would set no_new_privs for the non-root user anyway.
    assert not uses_seccomp(unit)
    assert uses_seccomp(agent_unit())


def test_exec_start_names_options_the_cli_has() -> None:
    for unit, command in ((sts_unit(), ["serve"]), (agent_unit(), ["agent", "run"])):
        argv = exec_start(unit)
        help_text = jobsts(*command, "--help").stdout
        assert argv[1 : 1 + len(command)] == command
        for option in (word for word in argv if word.startswith("--")):
            assert option in help_text, f"{' '.join(command)} has no {option}"


def test_the_socket_is_the_address_the_service_binds() -> None:
    socket_unit = parse_unit(UNITS / "jobsts-sts.socket")
    argv = exec_start(sts_unit())
    host, port = argv[argv.index("--host") + 1], argv[argv.index("--port") + 1]
    assert socket_unit["Socket"]["ListenStream"] == [f"{host}:{port}"]


# --- systemd-analyze -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed_units(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units with ExecStart under this virtualenv instead of /opt/jobsts (verify checks it)."""
    directory = tmp_path_factory.mktemp("units")
    for path in UNITS.iterdir():
        if path.suffix in (".service", ".socket"):
            (directory / path.name).write_text(path.read_text().replace(INSTALL_PREFIX, f"{VENV_BIN}/"))
    dropins = directory / "jobsts-agent.service.d"
    dropins.mkdir()
    shutil.copy(UNITS / "sudo-executor.conf", dropins)
    return directory


needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


@needs_analyze
@pytest.mark.parametrize("name", ["jobsts-sts.service", "jobsts-sts.socket", "jobsts-agent.service"])
def test_systemd_analyze_verify(installed_units: Path, name: str) -> None:
    assert SYSTEMD_ANALYZE is not None
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(installed_units / name)],
        capture_output=True,
        text=True,
        cwd=installed_units,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr


@needs_analyze
@pytest.mark.parametrize("name,threshold", [("jobsts-sts.service", 1.5), ("jobsts-agent.service", 3.5)])
def test_systemd_analyze_security_exposure(installed_units: Path, name: str, threshold: float) -> None:
    """systemd's own exposure score (0 best, 10 worst) stays where it is: 1.2 and 3.3 today."""
    assert SYSTEMD_ANALYZE is not None
    (installed_units / "jobsts-agent.service.d").rename(installed_units / "dropins.off")  # the default unit
    try:
        done = subprocess.run(
            [
                SYSTEMD_ANALYZE,
                "security",
                "--offline=yes",
                f"--threshold={int(threshold * 10)}",
                "--no-pager",
                str(installed_units / name),
            ],
            capture_output=True,
            text=True,
            cwd=installed_units,
            check=False,
        )
    finally:
        (installed_units / "dropins.off").rename(installed_units / "jobsts-agent.service.d")
    score = float(done.stdout.rsplit("Overall exposure level for", 1)[1].split(":", 1)[1].split()[0])
    assert score <= threshold, done.stdout


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_sysusers_creates_the_sts_account(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    done = subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNITS / "jobsts.sysusers.conf")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    entry = next(line for line in (tmp_path / "etc/passwd").read_text().splitlines() if line.startswith("jobsts:"))
    name, _, uid, _, _, home, shell = entry.split(":")
    assert (name, home, shell) == (last(sts_unit(), "User"), "/var/lib/jobsts", "/usr/sbin/nologin")
    assert 0 < int(uid) < 1000
