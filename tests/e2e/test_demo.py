"""``jobsts demo`` as a new user runs it: one process, no servers, exit 0, a readable story, and
nothing left behind. ``--keep`` leaves it running with a ``jobsts login`` line that works."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.e2e.harness import JOBSTS, jobsts
from tests.e2e.test_docs_examples import readme_demo_args

STORY_LINES = [
    r"jobsts demo: STS on http://127\.0\.0\.1:\d+",
    r"1\. John is an operator on node1",
    r"-> succeeded on node1: ran as \S+ for user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example; output: '\S+'",
    r"-> refused by the node1 agent: authz\.denied: node node1: user:jobmgr/uid=user2,\S+ has no role implying "
    r"operator",
    r"-> rejected at submit \(409\): realm\.untrusted: node dmgr \(realm cellB\) does not trust realm jobmgr",
    r"-> succeeded on dmgr: ran as \S+ for user:cellB/uid=john,ou=people,dc=cellb,dc=example",
    r"imports John's exported access ID user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example",
    r"-> succeeded on dmgr: ran as \S+ for user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example",
    r"-> refused by the dmgr agent: authz\.denied: node dmgr: user:jobmgr/uid=user1,\S+ has no role implying operator",
    r"-> cancelled \(never leased, never ran\)",
    # As root with openssh-server the remote step runs; otherwise it says why it was skipped.
    r"8\. John's job runs on remote host web1 over SSH, logging in with credential key web1-demo\.",
    r"-> succeeded on node1: ran as (\S+)@web1 for \S+; output: '\1'|-> skipped: (it needs root|\S+ is missing)",
    r"Every step went as the trust model predicts\.",
]


def _environ(tmp_path: Path) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
    environ.update(TMPDIR=str(tmp_path / "tmp"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    (tmp_path / "tmp").mkdir()
    return environ


def test_demo_tells_the_story_and_cleans_up(tmp_path: Path) -> None:
    # A permissive umask (002, as on distributions with user private groups) must not stop the
    # agents' strict file-mode checks: the demo sets its own modes.
    done = subprocess.run(
        [str(JOBSTS), *readme_demo_args()],
        capture_output=True,
        text=True,
        env=_environ(tmp_path),
        timeout=300,
        check=False,
        preexec_fn=lambda: os.umask(0o002),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for pattern in STORY_LINES:
        assert re.search(pattern, done.stdout), (pattern, done.stdout)
    assert "!!" not in done.stdout and "Traceback" not in done.stderr
    # Each job printed `id -un`: the output is the account it ran as.
    for account, output in re.findall(r"ran as (\S+) for \S+; output: '(\S+)'", done.stdout):
        assert account.split("@")[0] == output  # user@host for a job on a remote host
    assert list((tmp_path / "tmp").iterdir()) == []  # the demo removed its directory


def test_demo_keep_leaves_a_working_sts_and_a_ready_login_line(tmp_path: Path) -> None:
    environ = _environ(tmp_path)
    process = subprocess.Popen(
        [str(JOBSTS), "demo", "--keep"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            assert line, "".join(lines) + (process.stderr.read() if process.stderr else "")
            lines.append(line)
            if line.strip().startswith("jobsts submit"):
                break
        text = "".join(lines)
        login = next(line.split() for line in lines if line.strip().startswith("jobsts login"))
        url = login[login.index("--url") + 1]
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200
        # The printed login line works as printed (the password on stdin).
        done = jobsts(*login[1:], stdin="john-password\n", home=tmp_path / "config")
        assert "logged in" in done.stdout
        # So does the printed submit line: the demo's agents are still polling.
        submit = next(line.split() for line in lines if line.strip().startswith("jobsts submit"))
        done = jobsts(*submit[1:], home=tmp_path / "config")
        summary, output = done.stdout.splitlines()[-2:]
        assert "\tsucceeded\tnode1\trun\tuser:jobmgr/uid=john," in summary
        assert re.search(r"\bran as (\S+) ", done.stderr) and output == done.stderr.split("ran as ")[1].split()[0]
        assert "Every step went as the trust model predicts." in text
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert list((tmp_path / "tmp").iterdir()) == []


def test_demo_stops_with_one_line_when_an_agent_refuses_to_start(tmp_path: Path) -> None:
    environ = _environ(tmp_path)
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)  # not sticky: the agents refuse to start below it (agent.file_mode)
    environ["TMPDIR"] = str(loose)
    done = subprocess.run([str(JOBSTS), "demo"], capture_output=True, text=True, env=environ, timeout=300, check=False)
    assert done.returncode == 2, done.stdout + done.stderr  # a CLI error: one line, exit 2
    assert re.search(
        r"error: demo: the agent of \S+ stopped \(exit \d+\): .*writable by group or others", done.stderr
    ), done.stderr
    assert "Traceback" not in done.stderr


def test_demo_on_a_busy_port_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [str(JOBSTS), "demo", "--port", str(port)],
            capture_output=True,
            text=True,
            env=_environ(tmp_path),
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stdout + done.stderr  # werkzeug's own exit on a busy port
    assert "in use" in done.stderr and "Traceback" not in done.stderr
    assert list((tmp_path / "tmp").iterdir()) == []
