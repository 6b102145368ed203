"""Storage on SQLite and PostgreSQL: migrations, audited changes, version counter, cached snapshots."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, inspect, text

from authz_tables.entries import NODE_SCOPE, Effect, Entry
from authz_tables.errors import AuthzUnavailable, BadEntry, Conflict
from authz_tables.models import VERSION_TABLE, migrate, schema_differences
from authz_tables.roles import Role
from authz_tables.store import AuthzTable
from realms.identity.access_id import EVERYONE
from tests.authz_tables.conftest import ADMIN_ID, CAROL, HR, JOHN, OPERATORS, PAYROLL

pytestmark = pytest.mark.db
ALLOW, DENY = Effect.ALLOW, Effect.DENY


@contextmanager
def count_statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def listener(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listener)


def test_migrate_creates_prefixed_tables_matching_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        migrate(engine)
        migrate(engine)  # idempotent
        names = set(inspect(engine).get_table_names())
        assert {"authz_entries", "authz_version", "authz_changes", VERSION_TABLE} <= names
        assert "alembic_version" not in names  # shares a database with the STS's own history
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version FROM authz_version")).scalar() == 1
    finally:
        engine.dispose()


def test_migrate_by_url(database_url: str) -> None:
    migrate(database_url)
    with AuthzTable(database_url) as table:
        assert table.version() == 1


def test_grant_deny_revoke_are_audited(table: AuthzTable) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    diff = table.grant(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
    assert [c.action for c in diff.changes] == ["added"] and diff.applied
    table.deny(OPERATORS, Role.CONFIGURATOR, PAYROLL, changed_by="local:root")
    listed = table.list_entries()
    assert [a.entry for a in listed] == [
        Entry(OPERATORS, Role.CONFIGURATOR, DENY, PAYROLL),
        Entry(JOHN, Role.OPERATOR, ALLOW, NODE_SCOPE),
    ]
    assert {a.changed_by for a in listed} == {ADMIN_ID, "local:root"}
    assert all(before <= a.changed_at <= datetime.now(UTC) for a in listed)
    assert table.list_entries(principal=JOHN)[0].changed_by == ADMIN_ID
    assert [a.entry.role for a in table.list_entries(role=Role.CONFIGURATOR)] == [Role.CONFIGURATOR]

    # Granting what is denied replaces the deny, as one audited change.
    diff = table.grant(OPERATORS, Role.CONFIGURATOR, PAYROLL, changed_by=ADMIN_ID)
    assert [c.line() for c in diff.changes] == [f"~ deny -> allow configurator authgroup:payroll {OPERATORS}"]
    assert table.grant(OPERATORS, Role.CONFIGURATOR, PAYROLL, changed_by=ADMIN_ID).changes == ()

    diff = table.revoke(JOHN, Role.OPERATOR, changed_by="local:carol")
    assert [c.action for c in diff.changes] == ["removed"]
    assert not table.revoke(JOHN, Role.OPERATOR, changed_by="local:carol")
    history = table.history()
    assert [(h.action, h.changed_by, h.effect_before, h.effect_after) for h in history] == [
        ("removed", "local:carol", "allow", None),
        ("changed", ADMIN_ID, "deny", "allow"),
        ("added", "local:root", None, "deny"),
        ("added", ADMIN_ID, None, "allow"),
    ]
    assert [h.principal for h in table.history(principal=JOHN)] == [str(JOHN), str(JOHN)]


@pytest.mark.parametrize("actor", ["", "local:x\nforged line", "a\u202eb", "x" * 1201])
def test_changed_by_is_validated(table: AuthzTable, actor: str) -> None:
    with pytest.raises(BadEntry):
        table.grant(JOHN, Role.OPERATOR, changed_by=actor)
    assert table.list_entries() == []


def test_every_change_bumps_the_version_and_no_change_does_not(table: AuthzTable) -> None:
    v0 = table.version()
    table.grant(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
    v1 = table.version()
    assert v1 > v0
    table.grant(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)  # no change
    table.revoke(CAROL, Role.OPERATOR, changed_by=ADMIN_ID)  # nothing to revoke
    table.import_entries([Entry(CAROL, Role.MONITOR, ALLOW)], changed_by=ADMIN_ID, dry_run=True)
    assert table.version() == v1
    table.deny(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
    assert table.version() > v1


def test_snapshot_reloads_only_when_the_version_changes(database_url: str) -> None:
    with AuthzTable(database_url, upgrade=True) as writer, AuthzTable(database_url, refresh_interval=3600) as reader:
        first = reader.snapshot()
        assert not first.decide([JOHN], Role.OPERATOR).allowed
        writer.grant(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
        # Within the interval the reader keeps its snapshot without asking the database.
        with count_statements(reader.engine) as seen:
            assert reader.snapshot() is first
        assert seen == []
        second = reader.refresh()
        assert second is not first and second.version > first.version
        assert second.decide([JOHN], Role.OPERATOR).allowed
        # Refreshing without a change re-reads the version only, never the entries.
        with count_statements(reader.engine) as seen:
            assert reader.refresh() is second
        assert len(seen) == 1 and "authz_version" in seen[0]
        writer.deny(JOHN, Role.MONITOR, changed_by=ADMIN_ID)
        assert not reader.refresh().decide([JOHN], Role.OPERATOR).allowed


def test_own_changes_are_seen_at_once(database_url: str) -> None:
    with AuthzTable(database_url, upgrade=True, refresh_interval=3600) as table:
        assert not table.decide([JOHN], Role.OPERATOR).allowed
        table.grant(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
        assert table.decide([JOHN], Role.OPERATOR).allowed
        table.deny(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
        assert not table.decide([JOHN], Role.OPERATOR).allowed


def test_decide_issues_no_sql(table: AuthzTable) -> None:
    table.grant(OPERATORS, Role.OPERATOR, PAYROLL, changed_by=ADMIN_ID)
    snapshot = table.snapshot()
    with count_statements(table.engine) as seen:
        for _ in range(100):
            assert snapshot.decide([JOHN, OPERATORS, EVERYONE], Role.OPERATOR, [PAYROLL]).allowed
            assert not snapshot.decide([JOHN], Role.OPERATOR).allowed
    assert seen == []


def test_table_decide_checks_the_version_at_most_once_per_interval(database_url: str) -> None:
    with AuthzTable(database_url, upgrade=True, refresh_interval=3600) as table:
        table.grant(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
        with count_statements(table.engine) as seen:
            for _ in range(1000):
                table.decide([JOHN], Role.MONITOR)
        # One version check plus one load of the entries (first use), then nothing.
        assert len(seen) <= 3
        assert sum("authz_entries" in s for s in seen) == 1


def test_snapshot_fails_closed_when_the_schema_is_missing(database_url: str) -> None:
    with AuthzTable(database_url, refresh_interval=0) as table:
        with pytest.raises(AuthzUnavailable) as caught:
            table.snapshot()
        assert caught.value.code == "authz.unavailable"
        with pytest.raises(AuthzUnavailable):
            table.grant(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)


def test_unreadable_row_fails_closed(table: AuthzTable) -> None:
    table.deny(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
    with table.engine.begin() as conn:
        conn.execute(text("UPDATE authz_entries SET role = 'Operator'"))
        conn.execute(text("UPDATE authz_version SET version = version + 1"))
    with pytest.raises(AuthzUnavailable, match="unreadable"):
        table.snapshot()


def test_import_merges_replaces_and_is_idempotent(table: AuthzTable) -> None:
    table.grant(CAROL, Role.MONITOR, changed_by=ADMIN_ID)
    table.deny(JOHN, Role.OPERATOR, changed_by=ADMIN_ID)
    wanted = [Entry(JOHN, Role.OPERATOR, ALLOW), Entry(OPERATORS, Role.OPERATOR, ALLOW, HR)]
    dry = table.import_entries(wanted, changed_by=ADMIN_ID, dry_run=True)
    assert (dry.count("added"), dry.count("changed"), dry.applied) == (1, 1, False)
    assert len(table.list_entries()) == 2
    diff = table.import_entries(wanted, changed_by=ADMIN_ID)
    assert diff.summary() == "1 added, 1 changed, 0 removed, 0 unchanged" and diff.applied
    again = table.import_entries(wanted, changed_by=ADMIN_ID)
    assert again.summary() == "0 added, 0 changed, 0 removed, 2 unchanged"
    assert len(table.list_entries()) == 3  # carol kept: merge
    replaced = table.import_entries(wanted, changed_by=ADMIN_ID, replace=True)
    assert replaced.summary() == "0 added, 0 changed, 1 removed, 2 unchanged"
    assert table.export_entries() == sorted(wanted, key=Entry.sort_key)


def test_import_with_a_conflict_changes_nothing(table: AuthzTable) -> None:
    table.grant(CAROL, Role.MONITOR, changed_by=ADMIN_ID)
    version = table.version()
    for bad in (
        [Entry(JOHN, Role.OPERATOR, ALLOW), Entry(JOHN, Role.OPERATOR, DENY)],
        [Entry(JOHN, Role.OPERATOR, ALLOW), Entry(JOHN, Role.OPERATOR, ALLOW)],
    ):
        with pytest.raises(Conflict):
            table.import_entries(bad, changed_by=ADMIN_ID)
    assert table.version() == version
    assert [a.entry.principal for a in table.list_entries()] == [CAROL]


def test_large_import_and_snapshot(table: AuthzTable) -> None:
    many = [Entry(JOHN.__class__.user("jobmgr", f"uid=u{i}"), Role.OPERATOR, ALLOW) for i in range(500)]
    assert table.import_entries(many, changed_by=ADMIN_ID).count("added") == 500
    assert len(table.snapshot()) == 500
    assert table.import_entries(many, changed_by=ADMIN_ID).unchanged == 500


def test_concurrent_writers_and_readers(database_url: str) -> None:
    errors: list[BaseException] = []
    with AuthzTable(database_url, upgrade=True, refresh_interval=0) as table:

        def write(n: int) -> None:
            try:
                for i in range(10):
                    table.grant(JOHN.__class__.user("jobmgr", f"uid=w{n}-{i}"), Role.MONITOR, changed_by=ADMIN_ID)
            except BaseException as exc:
                errors.append(exc)

        def read() -> None:
            try:
                for _ in range(20):
                    snap = table.snapshot()
                    assert len(snap) == len(snap.entries())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
        threads += [threading.Thread(target=read) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(table.refresh()) == 40
        assert len(table.history(limit=1000)) == 40


def test_concurrent_first_use_migrates_once(database_url: str) -> None:
    errors: list[BaseException] = []

    def open_table() -> None:
        try:
            with AuthzTable(database_url, upgrade=True) as table:
                table.version()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_table) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with AuthzTable(database_url) as table:
        assert table.version() == 1
