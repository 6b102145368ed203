"""The STS app under a real WSGI server (werkzeug), in its own process, for the SIGKILL test
(``python -m tests.jobs.submit_server DATABASE_URL TMP_DIR``).

A SQLAlchemy ``after_cursor_execute`` hook announces ``FLUSHED`` once a job's INSERT has reached
the database inside its still-open transaction, then stalls: the test kills the process right there,
between receiving the submission and committing it.
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


def _stall_after_job_insert(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    if statement.startswith(f"INSERT INTO {Job.__tablename__} "):
        print("FLUSHED", flush=True)
        time.sleep(3600)


def main() -> None:
    database_url, tmp_dir = sys.argv[1], Path(sys.argv[2])
    app = create_app(make_config(tmp_dir, database_url))
    event.listen(Engine, "after_cursor_execute", _stall_after_job_insert)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(f"READY {server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
