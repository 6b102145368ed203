"""``jobsts realm test``: exit 0 / 1 / 2 with a one-line reason, human and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from realms.cli import realm
from tests.ldap_harness import SlapdServer

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sts.toml"


def run(*args: str, password: str = "john-password\n") -> tuple[int, str, str]:  # noqa: S107
    result = CliRunner().invoke(realm, ["test", *args], input=password)
    return result.exit_code, result.stdout, result.stderr


def test_example_realm_login_prints_access_id_and_groups() -> None:
    code, out, _ = run("--config", str(EXAMPLES), "--realm", "jobmgr", "--username", "john")
    assert code == 0
    assert "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example" in out
    assert "group:jobmgr/cn=ops-all,ou=groups,dc=jobmgr,dc=example" in out


def test_json_output() -> None:
    code, out, _ = run(
        "--config", str(EXAMPLES), "--realm", "cellB", "--username", "bob", "--json", password="bob-password\n"
    )
    assert code == 0
    data = json.loads(out)
    assert data["access_id"] == "user:cellB/uid=bob,ou=people,dc=cellb,dc=example"
    assert data["groups"] == [
        "group:cellB/cn=cell-all,ou=groups,dc=cellb,dc=example",
        "group:cellB/cn=cell-ops,ou=groups,dc=cellb,dc=example",
    ]


def test_pbkdf2_user_of_the_example() -> None:
    code, _, _ = run("--config", str(EXAMPLES), "--realm", "jobmgr", "--username", "carol", password="carol-password\n")
    assert code == 0


@pytest.mark.parametrize("password", ["wrong\n", "\n", ""])
def test_bad_credentials_exit_1_with_one_line(password: str) -> None:
    code, out, err = run("--config", str(EXAMPLES), "--realm", "jobmgr", "--username", "john", password=password)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: login.failed: realm jobmgr")


def test_unknown_realm_exits_2() -> None:
    code, _, err = run("--config", str(EXAMPLES), "--realm", "nope", "--username", "john")
    assert code == 2
    assert "config.invalid" in err and "nope" in err and "Traceback" not in err


def test_bad_config_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "sts.toml"
    config.write_text('[[realms]]\nname = "r1"\n[realms.registry]\ntype = "ldif"\npath = "x.ldif"\ncolour = 1\n')
    code, _, err = run("--config", str(config), "--realm", "r1", "--username", "john")
    assert code == 2
    assert err.count("\n") == 1 and "r1" in err
    config.write_text("not toml [")
    code, _, err = run("--config", str(config), "--realm", "r1", "--username", "john")
    assert code == 2 and "not valid TOML" in err


def test_unreachable_directory_exits_2(tmp_path: Path, down_ldap_url: str) -> None:
    config = tmp_path / "sts.toml"
    config.write_text(
        f'[[realms]]\nname = "corp"\n[realms.registry]\ntype = "ldap"\nurl = "{down_ldap_url}"\n'
        'user_base = "ou=people,dc=x"\ngroup_base = "ou=groups,dc=x"\nconnect_timeout = 1\n'
    )
    code, out, err = run("--config", str(config), "--realm", "corp", "--username", "john", "--json")
    assert code == 2
    assert json.loads(out)["code"] == "ldap.unavailable"
    assert err.startswith("error: ldap.unavailable: realm corp")


@pytest.mark.slapd
def test_against_the_running_slapd(tmp_path: Path, slapd: SlapdServer) -> None:
    table = slapd.realm_table("jobmgr", group_mode="memberOf")["registry"]
    lines = ["[[realms]]", 'name = "jobmgr"', "[realms.registry]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    config = tmp_path / "sts.toml"
    config.write_text("\n".join(lines) + "\n")
    code, out, _ = run("--config", str(config), "--realm", "jobmgr", "--username", "john", "--json")
    assert code == 0
    assert json.loads(out)["groups"] == [
        "group:jobmgr/cn=operators,ou=groups,dc=jobmgr,dc=example",
        "group:jobmgr/cn=ops-all,ou=groups,dc=jobmgr,dc=example",
    ]
    code, _, _ = run("--config", str(config), "--realm", "jobmgr", "--username", "alice", password="alice-password\n")
    assert code == 1
