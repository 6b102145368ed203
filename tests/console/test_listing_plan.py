"""The console's job list reads one index range in ``created_at`` order for every filter: no full
scan, no sort of all matching jobs (the cost of a page must not grow with the table; the
figures are in bench/results.md, "Console job list")."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from sts.db import make_engine
from sts.jobs.history import Viewer
from sts.jobs.listing import Cursor, ListingFilter, page_query
from sts.migrations import migrate

MONITOR = Viewer("user:jobmgr/m", sees_all=True, is_admin=False)
OWNER = Viewer("user:jobmgr/u", sees_all=False, is_admin=False)
CURSOR = Cursor(1_700_000_000.5, "00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize(
    ("viewer", "filters", "index"),
    [
        (MONITOR, ListingFilter(), "ix_sts_jobs_created"),
        (MONITOR, ListingFilter(cursor=CURSOR), "ix_sts_jobs_created"),
        (MONITOR, ListingFilter(state="refused", cursor=CURSOR), "ix_sts_jobs_state_created"),
        (MONITOR, ListingFilter(node="node1"), "ix_sts_jobs_node_created"),
        (MONITOR, ListingFilter(submitter="user:jobmgr/x"), "ix_sts_jobs_submitter"),
        (OWNER, ListingFilter(), "ix_sts_jobs_submitter"),
        (MONITOR, ListingFilter(since=1_700_000_000.0), "ix_sts_jobs_created"),
    ],
)
def test_each_page_is_an_index_range_in_order(
    tmp_path: Path, viewer: Viewer, filters: ListingFilter, index: str
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    try:
        migrate(engine)
        statement = page_query(viewer, filters).compile(engine, compile_kwargs={"literal_binds": True})
        with engine.connect() as connection:
            plan = [str(row[-1]) for row in connection.execute(text(f"EXPLAIN QUERY PLAN {statement}"))]
    finally:
        engine.dispose()
    assert any(f"USING INDEX {index}" in step for step in plan), plan
    # Ties on created_at are put in id order; no step sorts every matching job.
    assert not any(step.startswith("USE TEMP B-TREE FOR ORDER BY") for step in plan), plan
