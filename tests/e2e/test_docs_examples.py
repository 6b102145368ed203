"""The examples of the user documentation, exercised so they cannot rot.

* The README's first command installs and runs ``jobsts demo`` (``test_demo.py`` runs it).
* Every line of the README's "## CLI" block names real commands and real options.
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

import click
import pytest

from realms.console import cli
from tests.e2e.harness import IS_ROOT, JOBSTS, jobsts
from tests.loopback import listening_socket, port_of, werkzeug_fd_environment

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SECURITY = ROOT / "docs" / "security.md"
FIRST_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/jobsts demo"


def section(text: str, title: str) -> str:
    """The body of the ``## title`` (or ``### title``) section, up to the next heading of that level."""
    level = title.split(" ", 1)[0]
    start = text.index(f"\n{title}\n")
    end = text.find(f"\n{level} ", start + len(title) + 2)
    return text[start : end if end != -1 else len(text)]


def code_blocks(text: str, language: str = "") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def readme_demo_args() -> list[str]:
    """The ``jobsts`` arguments of the README's first command."""
    first = code_blocks(section(README.read_text(encoding="utf-8"), "## Two commands"), "sh")[0].strip()
    assert first == FIRST_COMMAND
    return first.rsplit(".venv/bin/jobsts ", 1)[1].split()


def test_the_readme_first_command_installs_and_runs_the_demo() -> None:
    assert readme_demo_args() == ["demo"]


# --- the CLI reference ------------------------------------------------------------------------
def _command(path: list[str]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group), f"jobsts {' '.join(path)}: {name!r} under a plain command"
        with click.Context(command) as ctx:
            found = command.get_command(ctx, name)
        assert found is not None, f"jobsts {' '.join(path)}: no such command"
        command = found
    return command


def _options(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def cli_lines() -> list[str]:
    block = code_blocks(section(README.read_text(encoding="utf-8"), "## CLI"))[0]
    return [line for line in block.splitlines() if line.startswith("jobsts ")]


def check_cli_line(line: str) -> list[str]:
    """Walk ``jobsts a|b c ... --opt`` and return the command paths it names (asserting options)."""
    usage = re.split(r"\s{2,}", line)[0]  # the description follows two or more spaces
    paths: list[list[str]] = [[]]
    for token in usage.split()[1:]:
        if token == "--":
            break
        word = token.strip("[]")
        if word.startswith("--"):
            for path in paths:
                assert word in _options(_command(path)), f"{line!r}: jobsts {' '.join(path)} has no {word}"
            continue
        names = word.split("|")
        if all(re.fullmatch(r"[a-z][a-z-]*", name) for name in names) and isinstance(_command(paths[0]), click.Group):
            paths = [[*path, name] for path in paths for name in names]
            for path in paths:
                _command(path)
    return [" ".join(path) for path in paths]


def test_every_line_of_the_cli_reference_names_real_commands_and_options() -> None:
    covered = set()
    for line in cli_lines():
        covered.update(check_cli_line(line))
    top = set(cli.list_commands(click.Context(cli)))
    assert top <= {path.split(" ")[0] for path in covered}, f"not in the CLI reference: {top - covered}"


def test_the_cli_reference_check_catches_a_wrong_option() -> None:
    with pytest.raises(AssertionError, match="has no --colour"):
        check_cli_line("jobsts login --url URL --colour")
    with pytest.raises(AssertionError, match="no such command"):
        check_cli_line("jobsts node frobnicate NODE")


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
