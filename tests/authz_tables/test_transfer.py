"""CSV and JSON import/export: exact round trips, and every bad file refused with its line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given

from authz_tables.entries import AuditedEntry, Effect, Entry
from authz_tables.errors import BadEntry, BadFile, Conflict
from authz_tables.roles import Role
from authz_tables.transfer import detect_format, export_csv, export_json, parse_text, read_file
from tests.authz_tables.conftest import HR, JOHN, OPERATORS, entry_lists

HEADER = "access_id,role,effect,scope\n"
SIMPLE = "user:jobmgr/uid=john"  # no comma, so it needs no CSV quoting


def _unique(entries: list[Entry]) -> list[Entry]:
    return list({e.key: e for e in entries}.values())


@given(entry_lists)
def test_csv_round_trips_exactly(entries: list[Entry]) -> None:
    entries = _unique(entries)
    text = export_csv(entries)
    parsed = [item.entry for item in parse_text(text, "csv")]
    assert parsed == sorted(entries, key=Entry.sort_key)
    assert export_csv(parsed) == text


@given(entry_lists)
def test_json_round_trips_exactly(entries: list[Entry]) -> None:
    entries = _unique(entries)
    text = export_json(entries)
    parsed = [item.entry for item in parse_text(text, "json")]
    assert parsed == sorted(entries, key=Entry.sort_key)
    assert export_json(parsed) == text


def test_awkward_access_ids_survive_csv() -> None:
    odd = Entry(JOHN.__class__.user("jobmgr", 'cn=Doe\\, "J",ou=x'), Role.OPERATOR, Effect.ALLOW)
    assert [i.entry for i in parse_text(export_csv([odd]), "csv")] == [odd]
    assert [i.entry for i in parse_text(export_json([odd]), "json")] == [odd]


def test_audit_columns_are_exported_and_ignored_on_import() -> None:
    audited = AuditedEntry(Entry(JOHN, Role.OPERATOR, Effect.DENY, HR), "local:root", datetime(2026, 1, 2, tzinfo=UTC))
    for fmt, text in (("csv", export_csv([audited])), ("json", export_json([audited]))):
        assert "local:root" in text and "2026-01-02T00:00:00+00:00" in text
        assert [i.entry for i in parse_text(text, fmt)] == [audited.entry]  # type: ignore[arg-type]


def test_defaults_for_absent_columns() -> None:
    parsed = parse_text(f'role,access_id\noperator,"{OPERATORS}"\n', "csv")
    assert parsed[0].entry == Entry(OPERATORS, Role.OPERATOR, Effect.ALLOW)
    assert parse_text(f'[{{"access_id": "{SIMPLE}", "role": "monitor"}}]', "json")[0].entry.role is Role.MONITOR


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        (HEADER + f"{SIMPLE},operator,allow,*\nuser:nope,operator,allow,*\n", "line 3", "bad access ID"),
        (HEADER + f"{SIMPLE},operator,allow,*\n{SIMPLE},boss,allow,*\n", "line 3", "unknown role 'boss'"),
        (HEADER + f"{SIMPLE},operator,permit,*\n", "line 2", "bad effect 'permit'"),
        (HEADER + f"{SIMPLE},operator,allow,group:x\n", "line 2", "bad scope 'group:x'"),
        (HEADER + f"{SIMPLE},operator,allow,authgroup:\n", "line 2", "bad authorization group name"),
        (HEADER + f"{SIMPLE},operator,allow\n", "line 2", "3 fields, expected 4"),
        (HEADER + f"{SIMPLE},,allow,*\n", "line 2", "unknown role ''"),
        (HEADER + f"{SIMPLE},Operator,allow,*\n", "line 2", "unknown role 'Operator'"),
        (HEADER + f"{SIMPLE} ,operator,allow,*\n", "line 2", "whitespace"),
    ],
)
def test_bad_csv_lines_are_named(text: str, where: str, problem: str) -> None:
    with pytest.raises(BadEntry) as caught:
        parse_text(text, "csv", "t.csv")
    assert caught.value.code == "authz.bad_entry"
    assert f"t.csv: {where}: " in caught.value.message and problem in caught.value.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty file"),
        ("principal,role\nx,y\n", "bad header"),
        ("access_id,role,role\n", "bad header"),
        ("access_id,role,colour\n", "bad header"),
        ('access_id,role\n"user:a/b,operator\n', "not valid CSV"),
    ],
)
def test_bad_csv_files(text: str, problem: str) -> None:
    with pytest.raises(BadFile) as caught:
        parse_text(text, "csv", "t.csv")
    assert caught.value.code == "authz.bad_file" and problem in caught.value.message


def test_duplicate_and_conflicting_lines() -> None:
    line = f"{SIMPLE},operator,allow,*\n"
    with pytest.raises(Conflict, match=r"t.csv: line 3: duplicate entry .* \(first at line 2\)"):
        parse_text(HEADER + line + line, "csv", "t.csv")
    with pytest.raises(Conflict, match=r"line 3: conflicting entries .*: allow and deny"):
        parse_text(HEADER + line + line.replace("allow", "deny"), "csv", "t.csv")
    # Different scopes are different entries.
    assert len(parse_text(HEADER + line + line.replace(",*", ",authgroup:hr"), "csv")) == 2


@pytest.mark.parametrize(
    ("text", "code", "problem"),
    [
        ('{"entries": [', "authz.bad_file", "line 1: not valid JSON"),
        ('{"entries": {}}', "authz.bad_file", "expected"),
        ('{"entries": [], "x": 1}', "authz.bad_file", "expected"),
        ("42", "authz.bad_file", "expected"),
        ('{"entries": [], "entries": []}', "authz.bad_file", "duplicate key"),
        ('{"entries": [\n  "user:a/b"\n]}', "authz.bad_entry", "entry 1 (line 2): an entry must be an object"),
        ('[{"access_id": "user:a/b", "role": "operator", "scop": "*"}]', "authz.bad_entry", "unknown field 'scop'"),
        ('[{"access_id": "user:a/b", "role": 3}]', "authz.bad_entry", "role must be a string"),
        ('[{"role": "operator"}]', "authz.bad_entry", "missing access_id"),
    ],
)
def test_bad_json(text: str, code: str, problem: str) -> None:
    with pytest.raises((BadFile, BadEntry)) as caught:
        parse_text(text, "json", "t.json")
    assert caught.value.code == code and problem in caught.value.message


def test_json_errors_name_the_line_of_the_entry() -> None:
    good = Entry(JOHN, Role.OPERATOR, Effect.ALLOW)
    text = export_json([good, Entry(OPERATORS, Role.MONITOR, Effect.ALLOW)]).replace('"operator"', '"operatr"')
    with pytest.raises(BadEntry, match=r"entry 2 \(line 3\): unknown role 'operatr'"):
        parse_text(text, "json", "t.json")
    pretty = (
        '{\n  "entries": [\n    {"access_id": "user:a/b",\n     "role": "operator"},\n'
        '    {\n      "role": "x"\n    }\n  ]\n}'
    )
    with pytest.raises(BadEntry, match=r"entry 2 \(line 5\): missing access_id"):
        parse_text(pretty, "json", "t.json")


def test_read_file_detects_format_and_refuses_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "table"
    path.write_text(export_json([Entry(JOHN, Role.OPERATOR, Effect.ALLOW)]))
    assert len(read_file(path)) == 1
    assert detect_format("x.CSV", "{") == "csv" and detect_format("x", " [") == "json"
    path.write_bytes(b"access_id,role\n\xff\xfe\n")
    with pytest.raises(BadFile, match="line 2: not valid UTF-8"):
        read_file(path)
    with pytest.raises(BadFile, match="cannot read"):
        read_file(tmp_path / "missing.csv")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (HEADER + f"{SIMPLE},operator,allow,*\n").encode())
    assert len(read_file(bom)) == 1
