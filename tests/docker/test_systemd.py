"""docker/systemd/: the units pass ``systemd-analyze verify``, keep their hardening, and the
programs they start really work inside that hardening.

PID 1 here is not systemd, so the units cannot be started. Three layers instead:
* the unit files are parsed and each hardening key is checked (always);
* ``systemd-analyze verify`` and ``systemd-analyze security --offline`` check them as systemd
  reads them (the ExecStart prefix /opt/jobsts is pointed at this virtualenv);
* tests/docker/unit_sandbox.py applies what works without PID 1 (capability bounding set,
  NoNewPrivileges, the expanded SystemCallFilter with its error number, RestrictAddressFamilies,
  MemoryDenyWriteExecute, ProtectProc/ProcSubset, UMask) from the unit file itself, and runs
  the unit's ExecStart in it: the STS serves logins, and the agent runs jobs as another
  account and kills a job's orphans. Removing any one of the agent's three capabilities makes
  a job fail or leaves an orphan alive, so the set is exactly what the setuid executor needs.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import Accounts, StsServer, jobsts, toml_table, wait_terminal, write_csv, write_private
from tests.ldap_harness import free_port, ldif_realm_table

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "docker" / "systemd"
SANDBOX = Path(__file__).with_name("unit_sandbox.py")
VENV_BIN = Path(sys.executable).parent
INSTALL_PREFIX = "/opt/jobsts/bin/"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
SYSTEM_PYTHON = "/usr/bin/python3"
IS_ROOT = os.geteuid() == 0
ADMIN = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
JOHN = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
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


# --- the programs, inside the units' sandbox -----------------------------------------------


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


@pytest.mark.root
@needs_sandbox
@pytest.mark.parametrize("socket_activated", [False, True], ids=["bound", "socket"])
def test_the_sts_serves_logins_inside_its_sandbox(tmp_path: Path, socket_activated: bool) -> None:
    unit = sts_unit()
    if socket_activated and shutil.which("systemd-socket-activate") is None:
        pytest.skip("systemd-socket-activate is not installed")
    config = tmp_path / "sts.toml"
    lines = toml_table(
        "sts", {"base_url": "http://127.0.0.1", "database_url": "sqlite:///jobsts.db", "master_key_file": "master.key"}
    )
    lines += toml_table("realms", {"name": "jobmgr"}, array=True)
    lines += toml_table("realms.registry", ldif_realm_table("jobmgr")["registry"])
    write_private(config, "\n".join(lines))
    jobsts("init", "--config", str(config))
    port = free_port()
    argv = exec_start(unit)
    argv[argv.index("--config") + 1] = str(config)
    argv[argv.index("--port") + 1] = str(port)
    command = sandboxed(sandbox_spec(unit), tmp_path, argv)
    if socket_activated:
        # systemd-socket-activate holds the socket as jobsts-sts.socket would, and passes it in
        # LISTEN_FDS; the sandbox and gunicorn run in the process it starts.
        listen = f"127.0.0.1:{free_port()}"
        command = ["systemd-socket-activate", "--listen", listen, *command]
        port = int(listen.rsplit(":", 1)[1])
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    environment = clean_env(JOBSTS_CONFIG=str(config), PROMETHEUS_MULTIPROC_DIR=str(metrics), HOME=str(tmp_path))
    with (tmp_path / "sts.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=environment,
            cwd=tmp_path,
            start_new_session=True,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        with httpx.Client(base_url=base, timeout=10) as http:
            while True:
                assert process.poll() is None, (tmp_path / "sts.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (tmp_path / "sts.log").read_text()[-3000:]
                try:
                    if http.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            token = http.post(
                "/realms/jobmgr/token", data={"grant_type": "password", "username": "john", "password": "john-password"}
            )
            assert token.status_code == 200, token.text
            assert http.get("/metrics").status_code == 200
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    assert "EPERM" not in (tmp_path / "sts.log").read_text()


@dataclass
class AgentSite:
    sts: StsServer
    workdir: Path
    account: str
    config: Path


@pytest.fixture(scope="module")
def agent_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentSite]:
    workdir = tmp_path_factory.mktemp("agent-unit")
    accounts = Accounts.make(["job"])
    sts = StsServer(workdir / "sts", [ldif_realm_table("jobmgr")], bootstrap_admins=[ADMIN]).prepare()
    jobsts(
        "authz",
        "--table",
        sts.database_url,
        "import",
        str(write_csv(workdir / "sts.csv", [(JOHN, "operator", "allow", "*")])),
    )
    try:
        sts.start()
        node = workdir / "node"
        jobsts("agent", "init", "--node", "sd-node", "--realm", "jobmgr", "--sts", sts.base_url, "--dir", str(node))
        sts.register_node(sts.token("admin"), "sd-node", "jobmgr", node / "node.pub.pem")
        jobsts(
            "authz",
            "--table",
            str(node / "authz.sqlite"),
            "import",
            str(write_csv(workdir / "node.csv", [(JOHN, "operator", "allow", "*")])),
        )
        agent = {"node_id": "sd-node", "realm": "jobmgr", "sts_url": sts.base_url, "executor": "setuid", "poll_wait": 0}
        lines = toml_table("agent", agent) + toml_table("job_types", {"run": "operator"})
        lines += toml_table("mapping", {"fallback": "deny"})
        lines += toml_table("mapping.rules", {"role": "operator", "account": accounts["job"]}, array=True)
        lines += toml_table("limits", {"kill_grace": 1})
        write_private(node / "agent.toml", "\n".join(lines))
        yield AgentSite(sts, workdir, accounts["job"], node / "agent.toml")
    finally:
        sts.stop()
        subprocess.run(["pkill", "-KILL", "-u", accounts["job"]], check=False)  # a control's orphan
        accounts.remove()


def run_job(site: AgentSite, argv: list[str], *, drop: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Submit as John, run ``jobsts agent run --once`` under the agent unit's sandbox, return the job."""
    token = site.sts.token("john")
    job = site.sts.submit(token, "sd-node", "run", argv)
    unit = agent_unit()
    command = exec_start(unit)
    command[command.index("--config") + 1] = str(site.config)
    done = subprocess.run(
        sandboxed(sandbox_spec(unit, drop=drop), site.workdir, [*command, "--once"]),
        capture_output=True,
        text=True,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return wait_terminal(site.sts, token, job["id"], timeout=60)


def processes_of(account: str) -> list[str]:
    done = subprocess.run(["pgrep", "-a", "-u", account], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()


ORPHAN = ["/bin/sh", "-c", "setsid sleep 300 >/dev/null 2>&1 & echo started"]


@pytest.mark.root
@needs_sandbox
def test_the_agent_runs_a_job_as_its_account_inside_its_sandbox(agent_site: AgentSite) -> None:
    done = run_job(agent_site, [shutil.which("id") or "/usr/bin/id", "-un"])
    assert done["state"] == "succeeded", done
    assert done["result"]["stdout_tail"].strip() == agent_site.account


@pytest.mark.root
@needs_sandbox
def test_the_agent_kills_a_jobs_orphans_inside_its_sandbox(agent_site: AgentSite) -> None:
    done = run_job(agent_site, ORPHAN)
    assert done["state"] == "succeeded", done
    assert processes_of(agent_site.account) == []


@pytest.mark.root
@needs_sandbox
def test_without_cap_kill_an_orphan_outlives_its_job(agent_site: AgentSite) -> None:
    """The control: CAP_KILL is what lets the agent stop processes of the job's account."""
    try:
        done = run_job(agent_site, ORPHAN, drop=frozenset({"CAP_KILL"}))
        assert done["state"] == "succeeded", done
        assert [line for line in processes_of(agent_site.account) if "sleep 300" in line]
    finally:
        subprocess.run(["pkill", "-KILL", "-u", agent_site.account], check=False)


@pytest.mark.root
@needs_sandbox
@pytest.mark.parametrize("capability", ["CAP_SETUID", "CAP_SETGID"])
def test_without_setuid_or_setgid_the_job_never_starts(agent_site: AgentSite, capability: str) -> None:
    done = run_job(agent_site, [shutil.which("id") or "/usr/bin/id", "-un"], drop=frozenset({capability}))
    assert done["state"] == "failed", done
    assert done["code"] == "exec.drop_failed"
    assert done["started_at"] is None or done["result"]["stdout_tail"] == ""


def status_of(spec: dict[str, Any], workdir: Path) -> dict[str, str]:
    done = subprocess.run(
        sandboxed(spec, workdir, ["/bin/cat", "/proc/self/status"]), capture_output=True, text=True, check=True
    )
    return dict(line.split(":\t", 1) for line in done.stdout.splitlines() if ":\t" in line)


@pytest.mark.root
@needs_sandbox
def test_the_sandbox_is_real(tmp_path: Path) -> None:
    """What the tests above run in: a seccomp filter, no new privileges, and the units' bounding sets."""
    sts = status_of(sandbox_spec(sts_unit()), tmp_path)
    assert sts["Seccomp"].strip() == "2" and sts["NoNewPrivs"].strip() == "1"
    assert int(sts["CapBnd"], 16) == 0 and int(sts["CapEff"], 16) == 0
    agent = status_of(sandbox_spec(agent_unit()), tmp_path)
    assert int(agent["CapBnd"], 16) == int(agent["CapEff"], 16) == (1 << 5) | (1 << 6) | (1 << 7)  # KILL SETGID SETUID
    probe = (
        "import mmap, os, socket\n"
        "for name, attempt in [\n"
        "    ('w+x mmap', lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)),\n"
        "    ('chown', lambda: os.chown('/proc/self/cwd', 0, 0)),\n"
        "    ('packet socket', lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW)),\n"
        "    ('/proc/sys', lambda: open('/proc/sys/kernel/hostname').read()),\n"
        "]:\n"
        "    try:\n"
        "        attempt()\n"
        "        print(name, 'allowed')\n"
        "    except OSError as exc:\n"
        "        print(name, 'refused', exc.errno)\n"
    )
    done = subprocess.run(
        sandboxed(sandbox_spec(sts_unit()), tmp_path, [SYSTEM_PYTHON, "-c", probe]),
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.splitlines() == [
        "w+x mmap refused 1",
        "chown refused 1",
        "packet socket refused 1",
        "/proc/sys refused 2",
    ]


@pytest.fixture
def sudo_accounts() -> Iterator[tuple[Accounts, str]]:
    """A service account (the agent's, under the sudo drop-in) and a job account, with a sudoers
    drop-in that lets the first run /usr/bin/env as the second, as README.md describes."""
    if shutil.which("sudo") is None:
        pytest.skip("sudo is installed by tests/run.sh")
    made = Accounts.make(["service", "job"])
    sudoers = Path(f"/etc/sudoers.d/jobsts-unit-test-{made['service']}")
    text = f"Defaults:{made['service']} !use_pty\n{made['service']} ALL=({made['job']}) NOPASSWD: /usr/bin/env\n"
    staged = Path(f"/tmp/{sudoers.name}")
    try:
        staged.write_text(text)
        subprocess.run(["visudo", "-cf", str(staged)], check=True, capture_output=True)
        fd = os.open(sudoers, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        yield made, str(sudoers)
    finally:
        staged.unlink(missing_ok=True)
        sudoers.unlink(missing_ok=True)
        made.remove()


def sudo_as_service(
    unit: Unit, accounts: Accounts, workdir: Path, drop: frozenset[str] = frozenset()
) -> subprocess.CompletedProcess[str]:
    """What the sudo executor runs, from the service account, under the unit's sandbox."""
    import pwd

    spec = sandbox_spec(unit, drop=drop)
    service = pwd.getpwnam(accounts["service"])
    spec.update(uid=service.pw_uid, gid=service.pw_gid, groups=[])
    command = ["/usr/bin/sudo", "-n", "-u", accounts["job"], "--", "/usr/bin/env", "-i", "id", "-un"]
    return subprocess.run(sandboxed(spec, workdir, command), capture_output=True, text=True, cwd="/", check=False)


@pytest.mark.root
@needs_sandbox
def test_sudo_works_under_the_sudo_executor_drop_in(sudo_accounts: tuple[Accounts, str], tmp_path: Path) -> None:
    accounts, _ = sudo_accounts
    done = sudo_as_service(agent_unit("sudo-executor.conf"), accounts, tmp_path)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, accounts["job"], "")


@pytest.mark.root
@needs_sandbox
def test_sudo_fails_under_the_default_unit_and_without_each_capability(
    sudo_accounts: tuple[Accounts, str], tmp_path: Path
) -> None:
    """The controls: why the drop-in turns off NoNewPrivileges and the seccomp settings, and keeps
    CAP_SETUID, CAP_SETGID and CAP_AUDIT_WRITE."""
    accounts, _ = sudo_accounts
    unit = agent_unit("sudo-executor.conf")
    only_nnp_off = agent_unit()
    only_nnp_off["Service"].update(User=["jobsts-agent"], NoNewPrivileges=["no"])
    refused = sudo_as_service(only_nnp_off, accounts, tmp_path)  # seccomp settings imply no_new_privs
    assert refused.returncode != 0 and "no new privileges" in refused.stderr
    for capability in ("CAP_SETUID", "CAP_SETGID"):
        done = sudo_as_service(unit, accounts, tmp_path, drop=frozenset({capability}))
        assert done.returncode != 0 and done.stdout == "", capability
    no_audit = sudo_as_service(unit, accounts, tmp_path, drop=frozenset({"CAP_AUDIT_WRITE"}))
    assert no_audit.stdout.strip() == accounts["job"] and "unable to send audit message" in no_audit.stderr
