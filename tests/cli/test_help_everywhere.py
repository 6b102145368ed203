"""Every ``--help`` works on a machine with nothing set up: HOME, XDG_CONFIG_HOME and the working
directory are an empty temporary directory and no ``JOBSTS_*`` variable is set. The whole tree is
walked in process (click's runner); the installed console script is asked too, for a sample."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from realms.console import cli
from tests.cli.reference import command_paths

JOBSTS = Path(sys.executable).parent / "jobsts"


@pytest.fixture
def nothing_set_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "empty"
    empty.mkdir()
    for key in list(os.environ):
        if key.startswith("JOBSTS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(empty))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(empty / ".config"))
    monkeypatch.chdir(empty)
    return empty


def test_every_help_works_with_nothing_configured(nothing_set_up: Path) -> None:
    paths = command_paths(cli)
    assert len(paths) > 30  # the whole tree, not just the top level
    failures = []
    for path in paths:
        done = CliRunner().invoke(cli, [*path, "--help"], prog_name="jobsts")
        if done.exit_code != 0 or "Usage:" not in done.stdout:
            failures.append(f"jobsts {' '.join(path)} --help: exit {done.exit_code}: {done.output[-300:]}")
    assert not failures, "\n".join(failures)
    assert list(nothing_set_up.iterdir()) == []  # asking for help wrote nothing


@pytest.mark.parametrize("path", [(), ("authz", "list"), ("agent", "run"), ("serve",), ("jobs", "logs")])
def test_the_console_script_prints_help_with_nothing_configured(nothing_set_up: Path, path: tuple[str, ...]) -> None:
    done = subprocess.run([str(JOBSTS), *path, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "Usage:" in done.stdout and not done.stderr, done.stderr
