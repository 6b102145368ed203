"""The real STS app in its own process, for kill -9 and log-canary tests:
``python -m tests.security.sts_process CONFIG_TOML PORT`` (``JOBSTS_BASE_URL`` and
``JOBSTS_TEST_LEASE_SECONDS`` in the environment set the issuer URL and the lease length).

It logs everything at DEBUG to stderr (what an operator would collect), serves with
werkzeug's threaded server on 127.0.0.1:PORT (0 = any), or with PORT ``fd:N`` on the listening
socket it inherited as fd N (the test holds the port across restarts: tests/loopback.py), and
prints ``READY <port>``.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

from werkzeug.serving import make_server

from sts import create_app
from sts.config import JobSettings, load_sts_config


def main() -> None:
    config_path, where = sys.argv[1], sys.argv[2]
    fd = int(where.removeprefix("fd:")) if where.startswith("fd:") else None
    port = 0 if fd is not None else int(where)
    logging.basicConfig(
        level=logging.DEBUG, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s %(args)s"
    )
    jobs = JobSettings(
        lease_seconds=int(os.environ.get("JOBSTS_TEST_LEASE_SECONDS", "60")), reap_interval=0.2, poll_interval=0.05
    )
    app = create_app(replace(load_sts_config(config_path), jobs=jobs))
    server = make_server("127.0.0.1", port, app, threaded=True, fd=fd)
    print(f"READY {server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
