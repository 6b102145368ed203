"""The Alembic revision 0002_jobs creates exactly the tables the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from sts.db import Base, make_engine
from sts.jobs.models import Job, JobIdempotency
from sts.migrations import migrate

pytestmark = pytest.mark.db
JOB_TABLES = {Job.__tablename__, JobIdempotency.__tablename__}


def _ours(diff: object) -> bool:
    text = repr(diff)
    return any(name in text for name in JOB_TABLES)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            differences = [d for d in compare_metadata(context, Base.metadata) if _ours(d)]
            indexes = {ix["name"] for ix in inspect(conn).get_indexes("sts_jobs")}
        migrate(engine)  # running it again is a no-op
    finally:
        engine.dispose()
    assert differences == []
    assert {"ix_sts_jobs_lease", "ix_sts_jobs_deadline", "ix_sts_jobs_lease_expiry"} <= indexes
