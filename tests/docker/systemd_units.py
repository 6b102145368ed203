"""Shared by the systemd unit tests: read docker/systemd/ units as systemd does, and build the
spec tests/docker/unit_sandbox.py applies (see test_systemd_units.py, test_systemd_sandbox.py)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "docker" / "systemd"
SANDBOX = Path(__file__).with_name("unit_sandbox.py")
VENV_BIN = Path(sys.executable).parent
INSTALL_PREFIX = "/opt/jobsts/bin/"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEM_PYTHON = "/usr/bin/python3"
IS_ROOT = os.geteuid() == 0
AGENT_CAPABILITIES = {"CAP_SETUID", "CAP_SETGID", "CAP_KILL"}

Unit = dict[str, dict[str, list[str]]]


def parse_unit(*paths: Path) -> Unit:
    """Sections -> key -> every value assigned, in order (systemd keys may repeat; drop-ins last)."""
    unit: Unit = {}
    for path in paths:
        section = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                unit.setdefault(section, {})
                continue
            key, _, value = line.partition("=")
            unit[section].setdefault(key.strip(), []).append(value.strip())
    return unit


def last(unit: Unit, key: str, section: str = "Service") -> str | None:
    values = unit.get(section, {}).get(key)
    return values[-1] if values else None


def words(unit: Unit, key: str, section: str = "Service") -> set[str]:
    """A list setting as systemd resolves it: an empty assignment resets what came before."""
    found: set[str] = set()
    for value in unit.get(section, {}).get(key, []):
        found = set() if value == "" else found | set(value.split())
    return found


def sts_unit() -> Unit:
    return parse_unit(UNITS / "jobsts-sts.service")


def agent_unit(*dropins: str) -> Unit:
    return parse_unit(UNITS / "jobsts-agent.service", *(UNITS / name for name in dropins))


def exec_start(unit: Unit) -> list[str]:
    command = shlex.split(last(unit, "ExecStart") or "")
    assert command and command[0].startswith(INSTALL_PREFIX), command
    return [str(VENV_BIN / command[0].removeprefix(INSTALL_PREFIX)), *command[1:]]


def seccomp_available() -> bool:
    done = subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True, check=False)
    return done.returncode == 0


def sandbox_problem() -> str | None:
    if not IS_ROOT:
        return "the sandbox drops root's capabilities: run as root"
    if SYSTEMD_ANALYZE is None or not seccomp_available():
        return "needs systemd-analyze and Debian's python3-seccomp (tests/run.sh installs them)"
    return None


SANDBOX_PROBLEM = sandbox_problem()
needs_sandbox = pytest.mark.skipif(SANDBOX_PROBLEM is not None, reason=SANDBOX_PROBLEM or "")


def expand_syscalls(group: str, seen: set[str] | None = None) -> set[str]:
    """``systemd-analyze syscall-filter @group``, nested groups expanded."""
    assert SYSTEMD_ANALYZE is not None
    seen = set() if seen is None else seen
    seen.add(group)
    listing = subprocess.run(
        [SYSTEMD_ANALYZE, "syscall-filter", group], capture_output=True, text=True, check=True
    ).stdout.splitlines()[1:]
    found: set[str] = set()
    for line in (raw.strip() for raw in listing):
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            found |= set() if line in seen else expand_syscalls(line, seen)
        else:
            found.add(line)
    return found


# systemd's context_has_seccomp(): for a non-root User= (no CAP_SYS_ADMIN after the switch),
# any of these makes systemd set no_new_privs, whatever NoNewPrivileges= says.
SECCOMP_SETTINGS = ("LockPersonality", "MemoryDenyWriteExecute", "PrivateDevices", "ProtectClock", "ProtectHostname",
                    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "RestrictRealtime",
                    "RestrictSUIDSGID")  # fmt: skip
SECCOMP_LISTS = ("RestrictAddressFamilies", "SystemCallArchitectures", "SystemCallFilter")


def uses_seccomp(unit: Unit) -> bool:
    return (
        any(last(unit, key) == "yes" for key in SECCOMP_SETTINGS)
        or any(words(unit, key) for key in SECCOMP_LISTS)
        or last(unit, "RestrictNamespaces") not in (None, "", "no")  # yes, or a list of namespace types
    )


def allowed_syscalls(unit: Unit) -> set[str] | None:
    """The SystemCallFilter= allow list as systemd builds it (None: no filter)."""
    allowed: set[str] | None = None
    for value in unit["Service"].get("SystemCallFilter", []):
        if value == "":
            allowed = None  # an empty assignment resets the filter
            continue
        deny = value.startswith("~")
        names = set().union(*(expand_syscalls(n) if n.startswith("@") else {n} for n in value.lstrip("~").split()))
        if allowed is None:
            assert not deny, "an allow list first, as these units write it"
            allowed = names | expand_syscalls("@default")  # systemd adds @default to every allow list
        else:
            allowed = allowed - names if deny else allowed | names
    return allowed


def sandbox_spec(unit: Unit, *, drop: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What unit_sandbox.py applies, read from the unit (``drop`` removes capabilities, for controls)."""
    allowed = allowed_syscalls(unit)
    user = last(unit, "User")
    errno_name = last(unit, "SystemCallErrorNumber") or "EPERM"
    return {
        "keep_caps": sorted(words(unit, "CapabilityBoundingSet") - drop),
        "no_new_privs": last(unit, "NoNewPrivileges") == "yes" or (user not in (None, "root") and uses_seccomp(unit)),
        "allow": sorted(allowed) if allowed is not None else None,
        "errno": {"EPERM": 1, "EACCES": 13}[errno_name],
        "families": sorted(words(unit, "RestrictAddressFamilies")) or None,
        "mdwe": last(unit, "MemoryDenyWriteExecute") == "yes",
        "private_proc": last(unit, "ProtectProc") == "invisible" or last(unit, "ProcSubset") == "pid",
        "umask": last(unit, "UMask"),
    }


def sandboxed(spec: dict[str, Any], workdir: Path, command: list[str]) -> list[str]:
    spec_file = workdir / f"sandbox-{len(list(workdir.glob('sandbox-*')))}.json"
    spec_file.write_text(json.dumps(spec))
    return [SYSTEM_PYTHON, str(SANDBOX), str(spec_file), "--", *command]


def clean_env(**extra: str) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
    environ["PATH"] = f"{VENV_BIN}{os.pathsep}{environ.get('PATH', '/usr/bin:/bin')}"
    environ.update(extra)
    return environ


def status_of(spec: dict[str, Any], workdir: Path) -> dict[str, str]:
    done = subprocess.run(
        sandboxed(spec, workdir, ["/bin/cat", "/proc/self/status"]), capture_output=True, text=True, check=True
    )
    return dict(line.split(":\t", 1) for line in done.stdout.splitlines() if ":\t" in line)
