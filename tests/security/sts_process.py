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

from werkzeug.serving import make_server

from sts import create_app


def main() -> None:
    config_path, where = sys.argv[1], sys.argv[2]
    fd = int(where.removeprefix("fd:")) if where.startswith("fd:") else None
    port = 0 if fd is not None else int(where)
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s %(args)s")
    app = create_app(config_path)
    app.config.update(JOBSTS_JOB_LEASE_SECONDS=int(os.environ.get("JOBSTS_TEST_LEASE_SECONDS", "60")),
                      JOBSTS_JOB_REAP_INTERVAL=0.2, JOBSTS_JOB_POLL_INTERVAL=0.05)
    server = make_server("127.0.0.1", port, app, threaded=True, fd=fd)
    print(f"READY {server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
