"""``jobsts agent check`` lists the mapping targets in root-equivalent groups, and which groups
``allow_privileged_groups`` lifts, in text and with ``--json``. ``root`` (in group ``root``)
is on every Linux host, so no account needs to be made."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.commands.agent import agent
from tests.agent_client.test_loop import write_agent_dir

OPS = "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example"
MAPPING = f"""
[mapping]
allow_root = true
allow_privileged_groups = ["adm"]

[[mapping.rules]]
group = "{OPS}"
account = "root"

[[mapping.rules]]
realm = "other"
account = "nobody"
"""


def _config(tmp_path: Path) -> Path:
    config = write_agent_dir(tmp_path / "agent", "http://127.0.0.1:9", ec.generate_private_key(ec.SECP256R1()))
    text = config.read_text()
    config.write_text(text[: text.index("[mapping]")] + MAPPING)
    return config


def test_check_lists_privileged_mappings_as_json(tmp_path: Path) -> None:
    checked = CliRunner().invoke(agent, ["check", "--config", str(_config(tmp_path)), "--json"])
    report = json.loads(checked.output)
    assert report["allow_privileged_groups"] == ["adm"]
    [entry] = report["privileged_mappings"]  # nobody is in no root-equivalent group
    assert entry["source"] == f"rule 1 (group {OPS})" and entry["account"] == "root"
    assert "root" in entry["groups"] and "root" in entry["refused"] and entry["lends_groups_of"] is None


def test_check_lists_privileged_mappings_as_text(tmp_path: Path) -> None:
    checked = CliRunner().invoke(agent, ["check", "--config", str(_config(tmp_path))])
    lines = [line for line in checked.output.splitlines() if line.startswith("privileged groups:")]
    assert lines[0].startswith(f"privileged groups: rule 1 (group {OPS}): root in ") and "refused unless" in lines[0]
    assert lines[-1] == "privileged groups: allow_privileged_groups = adm"
