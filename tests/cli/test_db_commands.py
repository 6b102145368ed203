"""``jobsts db check`` and ``jobsts db upgrade`` on a fresh SQLite database (the quick start's realms)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from realms.console import cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_check_reports_pending_migrations_and_upgrade_brings_both_schemas_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    config = str(tmp_path / "examples" / "sts.toml")
    monkeypatch.setenv("JOBSTS_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    runner = CliRunner()
    pending = runner.invoke(cli, ["db", "check", "--config", config])
    assert pending.exit_code == 1, pending.output
    assert "authz: at empty" in pending.output and "sts: at empty" in pending.output
    upgraded = runner.invoke(cli, ["db", "upgrade", "--config", config])
    assert upgraded.exit_code == 0, upgraded.output
    current = runner.invoke(cli, ["db", "check", "--config", config])
    assert current.exit_code == 0, current.output
    assert current.output.count("at head") == 2
