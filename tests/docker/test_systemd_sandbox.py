"""The programs the units start, inside the units' own sandbox (tests/docker/unit_sandbox.py
applies, from the unit files, what works without systemd as PID 1: the capability bounding
set, no_new_privs, the system call filter, address families, write-xor-execute, a private
/proc). The STS serves logins, bound and socket-activated; the agent runs a job as another
account and kills a job's orphan, and without any one of its three capabilities the job fails
or the orphan survives; sudo works under the sudo drop-in and not without what it keeps.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.docker.systemd_units import (
    SYSTEM_PYTHON,
    Unit,
    agent_unit,
    clean_env,
    exec_start,
    needs_sandbox,
    sandbox_spec,
    sandboxed,
    status_of,
    sts_unit,
)
from tests.e2e.harness import Accounts, StsServer, jobsts, toml_table, wait_terminal, write_csv, write_private
from tests.ldap_harness import ldif_realm_table
from tests.loopback import listening_socket, port_of, socket_activation

ADMIN = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
JOHN = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"


@pytest.mark.root
@needs_sandbox
@pytest.mark.parametrize("socket_activated", [False, True], ids=["bound", "socket"])
def test_the_sts_serves_logins_inside_its_sandbox(tmp_path: Path, socket_activated: bool) -> None:
    unit = sts_unit()
    config = tmp_path / "sts.toml"
    lines = toml_table(
        "sts", {"base_url": "http://127.0.0.1", "database_url": "sqlite:///jobsts.db", "master_key_file": "master.key"}
    )
    lines += toml_table("realms", {"name": "jobmgr"}, array=True)
    lines += toml_table("realms.registry", ldif_realm_table("jobmgr")["registry"])
    write_private(config, "\n".join(lines))
    jobsts("init", "--config", str(config))
    argv = exec_start(unit)
    argv[argv.index("--config") + 1] = str(config)
    held = listening_socket()
    port = port_of(held)
    # Ports are never chosen by bind-and-close: socket activation serves on a socket the test
    # holds; the "bound" variant lets gunicorn bind port 0 itself and reads the port from its log.
    pass_fds: tuple[int, ...] = ()
    if socket_activated:
        # As jobsts-sts.socket would: the socket is passed in LISTEN_FDS to the sandboxed server.
        command, pass_fds = socket_activation(sandboxed(sandbox_spec(unit), tmp_path, argv), held)
    else:
        held.close()
        argv[argv.index("--port") + 1] = "0"
        command = sandboxed(sandbox_spec(unit), tmp_path, argv)
        port = 0
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
            pass_fds=pass_fds,
        )
    held.close()
    try:
        port = port or _listening_port(process, tmp_path / "sts.log")
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


def _listening_port(process: subprocess.Popen[bytes], log: Path) -> int:
    """The port gunicorn reports in its "Listening at: http://127.0.0.1:PORT" line."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        found = re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    raise AssertionError(log.read_text()[-3000:])


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
