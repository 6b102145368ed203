"""Fixtures and hypothesis strategies of the authorization-table tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import strategies as st

from authz_tables.entries import NODE_SCOPE, Effect, Entry, Scope
from authz_tables.roles import Role
from authz_tables.store import AuthzTable
from realms.identity.access_id import EVERYONE, AccessId

JOHN = AccessId.user("jobmgr", "uid=john,ou=people,dc=jobmgr,dc=example")
CAROL = AccessId.user("jobmgr", "uid=carol,ou=people,dc=jobmgr,dc=example")
OPERATORS = AccessId.group("jobmgr", "cn=operators,ou=groups,dc=jobmgr,dc=example")
OPS_ALL = AccessId.group("jobmgr", "cn=ops-all,ou=groups,dc=jobmgr,dc=example")
CELLB_JOHN = AccessId.user("cellB", "uid=john,ou=people,dc=cellb,dc=example")
ADMIN_ID = "user:jobmgr/uid=admin,ou=people,dc=jobmgr,dc=example"
PAYROLL = Scope("payroll")
HR = Scope("hr")

roles = st.sampled_from(list(Role))
effects = st.sampled_from(list(Effect))
scopes = st.sampled_from([NODE_SCOPE, PAYROLL, HR])
access_ids = st.one_of(
    st.builds(AccessId.user, st.sampled_from(["jobmgr", "cellB"]), st.sampled_from(["a", "b", "A"])),
    st.builds(AccessId.group, st.sampled_from(["jobmgr", "cellB"]), st.sampled_from(["g1", "g2"])),
    st.just(EVERYONE),
)
entries = st.builds(Entry, access_ids, roles, effects, scopes)
entry_lists = st.lists(entries, max_size=25)
principal_sets = st.lists(access_ids, min_size=1, max_size=5)
scope_sets = st.lists(st.sampled_from([PAYROLL, HR]), max_size=2)


@pytest.fixture
def table(database_url: str) -> Iterator[AuthzTable]:
    """A migrated, empty table on the test database (SQLite file or PostgreSQL schema)."""
    with AuthzTable(database_url, upgrade=True, refresh_interval=0) as t:
        yield t
