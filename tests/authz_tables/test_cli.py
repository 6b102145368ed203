"""``jobsts authz`` through click's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from authz_tables.cli import authz, local_actor, resolve_table_url, table_url_from_config
from authz_tables.errors import AuthzConfigError
from authz_tables.store import AuthzTable
from realms.console import cli as jobsts_cli
from tests.authz_tables.conftest import JOHN, OPERATORS

pytestmark = pytest.mark.db
G = str(OPERATORS)
ADMIN = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
J = str(JOHN)


def run(url: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(authz, ["--table", url, *args], input=input)


def test_grant_deny_revoke_list_and_audit(database_url: str) -> None:
    result = run(database_url, "grant", G, "operator")
    assert result.exit_code == 0, result.output
    assert result.output == f"+ allow operator * {G}\n"
    assert run(database_url, "grant", G, "operator").output == f"unchanged: allow operator * {G}\n"
    assert run(database_url, "deny", J, "administrator", "--scope", "authgroup:hr").exit_code == 0
    listed = run(database_url, "list")
    assert listed.exit_code == 0
    assert local_actor() in listed.output and "authgroup:hr" in listed.output and "2 entries" in listed.output
    only = run(database_url, "list", "--principal", J)
    assert J in only.output and G not in only.output.split("\n", 1)[1]
    assert "1 entries" in run(database_url, "list", "--role", "administrator").output
    assert run(database_url, "revoke", J, "administrator", "--scope", "authgroup:hr").output.startswith("- deny")
    assert "nothing revoked" in run(database_url, "revoke", J, "administrator").output
    history = run(database_url, "history").output.splitlines()
    assert len(history) == 3 and "removed" in history[0] and local_actor() in history[0]


def test_check_exit_codes_and_reasons(database_url: str) -> None:
    run(database_url, "grant", G, "operator", "--scope", "authgroup:payroll")
    run(database_url, "deny", J, "monitor", "--scope", "authgroup:hr")
    allowed = run(database_url, "check", J, G, "--role", "operator", "--scope", "authgroup:payroll")
    assert allowed.exit_code == 0
    assert allowed.output.startswith(f"allowed: {J} holds operator on authgroup:payroll: allow operator to {G}")
    denied = run(database_url, "check", J, G, "--role", "operator")
    assert denied.exit_code == 1
    assert denied.output == (
        f"denied: {J} has no role implying operator on node scope; "
        f"nearest grant: operator via {G} on authgroup:payroll\n"
    )
    # A deny of monitor refuses every role that implies it (operator too), whatever the group grants.
    run(database_url, "grant", G, "operator", "--scope", "authgroup:hr")
    refused = run(database_url, "check", J, G, "--role", "operator", "--scope", "authgroup:hr")
    assert refused.exit_code == 1 and "a deny wins" in refused.output
    assert "a deny of monitor refuses every role that implies it" in refused.output
    assert run(database_url, "check", G, "--role", "operator", "--scope", "authgroup:hr").exit_code == 0


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["grant", "john", "operator"], "access_id.invalid"),
        (["grant", J, "boss"], "authz.bad_role"),
        (["grant", J, "operator", "--scope", "node"], "authz.bad_scope"),
        (["check", J, "--role", "Operator"], "authz.bad_role"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(database_url: str, args: list[str], code: str) -> None:
    result = run(database_url, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {code}: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_import_is_atomic_and_names_the_bad_line(database_url: str, tmp_path: Path) -> None:
    run(database_url, "grant", G, "monitor")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        f'access_id,role,effect,scope\n"{J}",operator,allow,*\n"{J}",operatr,allow,*\n"{G}",operator,deny,*\n'
    )
    result = run(database_url, "import", str(bad))
    assert result.exit_code == 2
    assert result.stderr == f"error: authz.bad_entry: {bad}: line 3: unknown role 'operatr': " \
        "expected one of administrator, configurator, operator, monitor\n"  # fmt: skip
    exported = run(database_url, "export").output
    assert exported == f'access_id,role,effect,scope\n"{G}",monitor,allow,*\n'


def test_import_conflict_changes_nothing(database_url: str, tmp_path: Path) -> None:
    path = tmp_path / "conflict.json"
    entries = [{"access_id": J, "role": "operator"}, {"access_id": J, "role": "operator", "effect": "deny"}]
    path.write_text(json.dumps({"entries": entries}))
    result = run(database_url, "import", str(path))
    assert result.exit_code == 2 and result.stderr.startswith("error: authz.conflict: ")
    assert "entry 2 (line 1)" in result.stderr
    assert run(database_url, "export").output == "access_id,role,effect,scope\n"


def test_dry_run_prints_the_diff_and_changes_nothing(database_url: str, tmp_path: Path) -> None:
    run(database_url, "deny", J, "operator")
    run(database_url, "grant", G, "monitor")
    path = tmp_path / "new.csv"
    path.write_text(f'access_id,role,effect\n"{J}",operator,allow\n"{G}",monitor,allow\n"{G}",operator,allow\n')
    before = run(database_url, "export").output
    result = run(database_url, "import", str(path), "--dry-run")
    assert result.exit_code == 0
    assert result.output == (
        f"~ deny -> allow operator * {J}\n+ allow operator * {G}\ndry run: 1 added, 1 changed, 0 removed, 1 unchanged\n"
    )
    assert run(database_url, "export").output == before
    assert run(database_url, "import", str(path)).output.endswith(
        "import: 1 added, 1 changed, 0 removed, 1 unchanged\n"
    )
    assert run(database_url, "import", str(path)).output == "import: 0 added, 0 changed, 0 removed, 3 unchanged\n"
    removed = run(database_url, "import", str(path), "--replace", "--dry-run")
    assert removed.output.endswith("0 removed, 3 unchanged\n")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_import_round_trip(database_url: str, tmp_path: Path, fmt: str) -> None:
    run(database_url, "grant", G, "operator", "--scope", "authgroup:payroll")
    run(database_url, "deny", J, "administrator")
    run(database_url, "grant", "special:EVERYONE", "monitor")
    exported = run(database_url, "export", "--format", fmt).output
    path = tmp_path / f"table.{fmt}"
    path.write_text(exported)
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert run(other, "import", str(path)).exit_code == 0
    assert run(other, "export", "--format", fmt).output == exported
    assert run(database_url, "import", str(path)).output.endswith("0 added, 0 changed, 0 removed, 3 unchanged\n")
    with_audit = run(database_url, "export", "--format", fmt, "--audit").output
    assert local_actor() in with_audit
    path.write_text(with_audit)
    assert run(other, "import", str(path)).output.endswith("3 unchanged\n")
    stdin = run(other, "import", "-", "--format", fmt, input=exported)
    assert stdin.exit_code == 0 and stdin.output.endswith("3 unchanged\n")


def test_import_ignores_audit_columns_of_the_file(database_url: str, tmp_path: Path) -> None:
    # The audit records who really made the change; a file cannot claim to be someone else.
    path = tmp_path / "forged.json"
    forged = {"access_id": J, "role": "operator", "changed_by": ADMIN, "changed_at": "2001-01-01T00:00:00+00:00"}
    path.write_text(json.dumps({"entries": [forged]}))
    assert run(database_url, "import", str(path)).exit_code == 0
    with AuthzTable(database_url) as table:
        (audited,) = table.list_entries()
    assert audited.changed_by == local_actor() and audited.changed_at.year > 2001


def test_config_file_and_relative_paths(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    config = conf_dir / "agent.toml"
    config.write_text('[authz]\ntable = "sqlite:///authz.db"\n')
    result = CliRunner().invoke(authz, ["--config", str(config), "grant", J, "operator"])
    assert result.exit_code == 0, result.output
    assert (conf_dir / "authz.db").exists()
    assert table_url_from_config(config) == f"sqlite:///{conf_dir / 'authz.db'}"
    assert resolve_table_url("data/t.db", tmp_path) == f"sqlite:///{tmp_path / 'data/t.db'}"
    assert resolve_table_url("postgresql+psycopg://u:p@h/db", tmp_path) == "postgresql+psycopg://u:p@h/db"
    with AuthzTable(table_url_from_config(config)) as table:
        assert table.snapshot().decide([JOHN], table.list_entries()[0].entry.role).allowed


@pytest.mark.parametrize(
    ("text", "problem"),
    [("[sts]\n", "[authz] table is missing"), ("[authz]\ntable = 3\n", "must be a string"), ("[authz\n", "TOML")],
)
def test_bad_config(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(text)
    with pytest.raises(AuthzConfigError, match=problem.replace("[", r"\[")):
        table_url_from_config(config)
    result = CliRunner().invoke(authz, ["--config", str(config), "list"])
    assert result.exit_code == 2 and result.stderr.startswith("error: authz.bad_config: ")


def test_no_table_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOBSTS_AUTHZ_TABLE", raising=False)
    result = CliRunner().invoke(authz, ["list"])
    assert result.exit_code == 2 and "no authorization table" in result.stderr


def test_wired_into_the_jobsts_command(database_url: str) -> None:
    result = CliRunner().invoke(jobsts_cli, ["authz", "--table", database_url, "check", J, "--role", "monitor"])
    assert result.exit_code == 1 and "nearest grant: none" in result.output
