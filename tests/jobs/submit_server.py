"""The STS app under a real WSGI server (werkzeug), in its own process, for the SIGKILL tests
(``python -m tests.jobs.submit_server DATABASE_URL TMP_DIR [before|after]``).

A SQLAlchemy cursor hook announces ``FLUSHED`` once the statement that writes a job is about to be
sent (``before``) or has returned (``after``, the default), then stalls: the test kills the
process right there. After it, on SQLite, the INSERT is in the database inside its still-open
transaction; on PostgreSQL, where one statement writes the job and commits, the job is committed
and the client has had no answer.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from werkzeug.serving import make_server

from sts import create_app
from sts.jobs.models import Job
from tests.sts.conftest import make_config


def _stall_at_job_insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    # SQLite's plain INSERT, or PostgreSQL's WITH job AS (INSERT ...) SELECT pg_notify(...).
    words = " ".join(statement.split()[:6])
    if words.startswith((f"INSERT INTO {Job.__tablename__} ", f"WITH job AS (INSERT INTO {Job.__tablename__}")):
        print("FLUSHED", flush=True)
        time.sleep(3600)


def main() -> None:
    database_url, tmp_dir = sys.argv[1], Path(sys.argv[2])
    when = sys.argv[3] if len(sys.argv) > 3 else "after"
    app = create_app(make_config(tmp_dir, database_url))
    event.listen(Engine, f"{when}_cursor_execute", _stall_at_job_insert)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
