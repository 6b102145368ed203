"""The real STS app with 3-second access tokens and no leeway, for the long-wait CLI test:
``python -m tests.cli.short_ttl_sts CONFIG_TOML FD``. The TOML loader refuses lifetimes under
30 s (a production floor); this runner sets the realms' token policy after loading, so a test can
outlive several access tokens in seconds. It serves with werkzeug on the listening socket FD the
test holds (so no other process can take the port) and prints ``READY <port>``; the audit log goes
to stderr.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from werkzeug.serving import make_server

from sts import create_app
from sts.config import JobSettings, load_sts_config
from sts.observability.audit import configure_logging

ACCESS_TOKEN_TTL = 3


def main() -> None:
    config_path, fd = sys.argv[1], int(sys.argv[2])
    configure_logging("warning")  # the audit lines (JSON) still go to stderr
    config = load_sts_config(config_path)
    realms = {
        name: replace(realm, token=replace(realm.token, access_token_ttl=ACCESS_TOKEN_TTL, leeway=0))
        for name, realm in config.realms.items()
    }
    jobs = JobSettings(reap_interval=0.2, poll_interval=0.05)
    app = create_app(replace(config, realms=realms, jobs=jobs))
    server = make_server("127.0.0.1", 0, app, threaded=True, fd=fd)
    print(f"READY {server.socket.getsockname()[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
