"""Running the shadow tools (useradd, groupadd, usermod, chpasswd, userdel, groupdel) from tests.

Several suites may run at once on one machine (CI runs two or three clones in parallel), and each
tool takes the lock on /etc/passwd, /etc/shadow and /etc/group for its change; one that finds the
lock taken gives up at once ("cannot lock /etc/passwd; try again later"). So a tool that failed
on the lock is run again until ``STARTUP_SECONDS`` pass; any other failure is the test's to see.
"""

from __future__ import annotations

import subprocess
import time

from tests.patience import STARTUP_SECONDS


def account_tool(argv: list[str], *, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run one shadow tool; retried while another process holds the account files' lock. With
    ``check``, a failure raises ``CalledProcessError`` with the tool's own message."""
    give_up = time.monotonic() + STARTUP_SECONDS
    while True:
        done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
        if done.returncode == 0 or "lock" not in done.stderr.lower() or time.monotonic() > give_up:
            break
        time.sleep(0.2)
    if check and done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)
    return done
