"""Scripting output and precise errors: ``--json`` on table and agent checks, ``agent.key_missing``
for a node that was never initialised, and one-line errors with exit 2 from the console script."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.commands.agent import agent
from agent_client.commands.authz import authz
from tests.agent_client.test_loop import write_agent_dir
from tests.cli.test_help_everywhere import JOBSTS

OPS = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"
JOHN = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"


def test_authz_list_and_check_print_json(tmp_path: Path) -> None:
    table = f"sqlite:///{tmp_path / 'authz.db'}"
    runner = CliRunner()
    assert runner.invoke(authz, ["--table", table, "grant", OPS, "operator"]).exit_code == 0
    listed = runner.invoke(authz, ["--table", table, "list", "--json"])
    [entry] = json.loads(listed.output)
    assert entry["access_id"] == OPS and entry["role"] == "operator" and entry["changed_by"].startswith("local:")
    checked = runner.invoke(authz, ["--table", table, "check", JOHN, OPS, "--role", "monitor", "--json"])
    assert checked.exit_code == 0 and json.loads(checked.output)["allowed"] is True
    denied = runner.invoke(authz, ["--table", table, "check", JOHN, "--role", "monitor", "--json"])
    assert denied.exit_code == 1 and json.loads(denied.output)["allowed"] is False


def test_a_missing_node_key_has_its_own_code_pointing_to_agent_init(tmp_path: Path) -> None:
    config = write_agent_dir(tmp_path / "agent", "http://127.0.0.1:9", ec.generate_private_key(ec.SECP256R1()))
    (config.parent / "node.key").unlink()
    checked = CliRunner().invoke(agent, ["check", "--config", str(config), "--json"])
    assert checked.exit_code == 1
    [problem] = json.loads(checked.output)["problems"]
    assert problem.startswith("agent.key_missing: ") and "jobsts agent init --node" in problem
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSTS_")}
    ran = subprocess.run([str(JOBSTS), "agent", "run", "--config", str(config), "--once"], capture_output=True,
                         text=True, env=environ, timeout=60, check=False)  # fmt: skip
    assert ran.returncode == 2 and ran.stderr.startswith("error: agent.key_missing: "), ran.stderr
    assert "agent.file_mode" not in ran.stderr


def test_usage_errors_use_the_one_prefix_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run([str(JOBSTS), "jobs", "show"], capture_output=True, text=True, timeout=60, check=False,
                          cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and "error: Missing argument 'JOB_ID'." in done.stderr and "Error:" not in done.stderr
