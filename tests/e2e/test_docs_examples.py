"""The examples of the user documentation, exercised so they cannot rot.

* The README's first command installs and runs ``jobsts demo`` (``test_demo.py`` runs it).
* The "By hand: two realms and an agent" block runs as written (bash, a real STS and agent).
* Every test that ``docs/security.md`` cites exists.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

from tests.cli.reference import code_blocks, section
from tests.e2e.harness import IS_ROOT, JOBSTS, jobsts
from tests.loopback import listening_socket, port_of, werkzeug_fd_environment

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECURITY = ROOT / "docs" / "security.md"
FIRST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/jobsts demo"


def readme_demo_args() -> list[str]:
    """The ``jobsts`` arguments of the README's first command."""
    first = code_blocks(section(README.read_text(encoding="utf-8"), "## Two commands"), "sh")[0].strip()
    assert first == FIRST_COMMAND
    return first.rsplit(".venv/bin/jobsts ", 1)[1].split()


def test_the_readme_first_command_installs_and_runs_the_demo() -> None:
    assert readme_demo_args() == ["demo"]


# --- the walkthrough ----------------------------------------------------------------------------
def test_the_by_hand_walkthrough_runs_as_written(tmp_path: Path) -> None:
    readme = README.read_text(encoding="utf-8")
    [block] = code_blocks(section(readme, "### By hand: two realms and an agent"), "sh")
    # The walkthrough's `jobsts serve --port` gets the listening socket this test holds (werkzeug
    # takes it from WERKZEUG_SERVER_FD), so the port cannot be taken by anyone else meanwhile.
    sock = listening_socket()
    port = str(port_of(sock))
    script = block.replace("8080", port)
    if IS_ROOT:  # the documented variant for an agent that runs as root
        script = script.replace('executor = "self"', 'executor = "setuid"').replace('"$(id -un)"', '"nobody"')
    work = tmp_path / "repo"
    (work / "examples").mkdir(parents=True)
    shutil.copytree(ROOT / "examples" / "realms", work / "examples" / "realms")
    (work / "examples" / "sts.toml").write_text(
        (ROOT / "examples" / "sts.toml").read_text(encoding="utf-8").replace("8080", port), encoding="utf-8"
    )
    environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
    environ.update(
        PATH=f"{JOBSTS.parent}{os.pathsep}{environ.get('PATH', '')}",
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HOME=str(tmp_path),
        **werkzeug_fd_environment(sock),
    )
    # set -e: any failing step fails the test; the trap stops the background STS and agent.
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{script}"
    process = subprocess.Popen(
        ["bash", "-c", wrapped],
        cwd=work,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        pass_fds=(sock.fileno(),),
    )
    try:
        out, err = process.communicate(timeout=240)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        sock.close()
    assert process.returncode == 0, out[-3000:] + err[-3000:]
    expected = (
        "nobody"
        if IS_ROOT
        else subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    )
    assert re.search(r"\tsucceeded\tnode1\trun\tuser:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example", out), out
    assert out.rstrip().splitlines()[-1] == expected, out


# --- the threat model ---------------------------------------------------------------------------
def test_every_test_the_threat_model_cites_exists() -> None:
    text = SECURITY.read_text(encoding="utf-8")
    cited = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(cited) >= 15
    for path, name in cited:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^(?:    )?def {name}\(", source, flags=re.MULTILINE), f"{path}::{name} does not exist"


def test_every_defence_the_threat_model_cites_exists() -> None:
    """``file.py:name`` citations of defences name a function, class or setting in that file."""
    text = SECURITY.read_text(encoding="utf-8")
    cited = re.findall(r"`((?:realms|sts|agent_client|authz_tables)/[\w/]+\.py):(\w+)`", text)
    assert len(cited) >= 10
    for path, name in cited:
        source = (ROOT / path).read_text(encoding="utf-8")
        pattern = rf"^(?:    )?(?:def|class) {name}\b|^{name}\b.*="
        assert re.search(pattern, source, flags=re.MULTILINE), f"{path}:{name} does not exist"


def test_a_jobsts_error_is_one_line_with_its_code_and_exit_2() -> None:
    """The CLI reference's promise: ``error: <code>: <message>`` on one line, exit status 2."""
    assert "`error: <code>: <message>`, and exits 2" in section(README.read_text(encoding="utf-8"), "## CLI")
    done = jobsts("access-id", "--config", str(ROOT / "examples" / "sts.toml"), "jobmgr", "nosuchuser", expect=2)
    assert re.fullmatch(r"error: user\.unknown: realm jobmgr: no user 'nosuchuser'\n", done.stderr), done.stderr
