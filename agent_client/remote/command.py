"""The command line a job runs as on a remote host, and how its process group is killed.

sshd runs ``$SHELL -c '<command>'`` for the login user, so every word is quoted for a POSIX
shell (``shlex.quote``) and the login shell must be sh-compatible (sh, dash, bash, ksh, zsh).
The command starts a small ``/bin/sh`` wrapper (after ``sudo`` when a substitute user is
asked for) that:

1. keeps the channel's stdin as descriptor 3 and gives the job ``/dev/null``;
2. enters the working directory (the account's home by default), else exits 125;
3. starts the job under ``setsid`` in a new session and process group, with an environment
   built by ``env -i`` (fixed PATH, HOME, USER, LOGNAME, SHELL, then the job's additions);
   the job's first act is to print ``jobsts-pgid:<pgid>`` on stderr, before any output;
4. runs a watcher that reads lines from the channel: ``TERM`` or ``KILL`` signal the job's
   whole process group, and end of input (the agent closed the channel, or died, or the
   connection broke) kills it with SIGKILL, so a job never outlives its connection;
5. waits for the job, kills what is left of its group (as a local job's group is killed when
   it ends), and exits with the job's status.

sudo reads a password only when it asks for one: the prompt is a fixed marker on stderr, and
the agent answers it once on stdin. A second prompt means the password was wrong.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from agent_client.executors.environment import FIXED_PATH

PGID_MARKER = re.compile(rb"jobsts-pgid:(\d+)\n")
SUDO_PROMPT = b"[jobsts-sudo-password]"
CWD_FAILED_EXIT = 125
WRAPPER_NAME = "jobsts-remote-job"

WRAPPER = f"""\
PATH=/usr/bin:/bin:$PATH
exec 3<&0 </dev/null
dir=$1; shift
[ -n "$dir" ] || dir=${{HOME:-/}}
cd -- "$dir" 2>/dev/null || {{ printf 'jobsts: cannot change directory to %s\\n' "$dir" >&2; exit {CWD_FAILED_EXIT}; }}
user=$(id -un 2>/dev/null) || user=${{USER:-}}
setsid /bin/sh -c 'printf "jobsts-pgid:%s\\n" "$$" >&2; exec "$@"' {WRAPPER_NAME} \\
  /usr/bin/env -i PATH={FIXED_PATH} HOME="${{HOME:-/}}" USER="$user" LOGNAME="$user" SHELL="${{SHELL:-/bin/sh}}" \\
  "$@" 3<&- &
job=$!
{{ while read -r signal; do
    case $signal in TERM|KILL) kill -s "$signal" -- "-$job" 2>/dev/null;; esac
  done
  kill -s KILL -- "-$job" 2>/dev/null; }} <&3 >/dev/null 2>&1 &
watcher=$!
exec 3<&-
wait "$job"; status=$?
kill -s KILL -- "-$job" 2>/dev/null
kill "$watcher" 2>/dev/null
exit "$status"
"""


def remote_command(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    *,
    sudo_user: str | None = None,
    sudo_password: bool = False,
) -> str:
    """The one string sent in the SSH ``exec`` request (RFC 4254 §6.5)."""
    # Why: argv and the environment travel as separate, quoted words, never spliced into the
    # wrapper's text, so no argument is ever parsed as shell syntax on the remote host.
    words = ["/bin/sh", "-c", WRAPPER, WRAPPER_NAME, cwd or "", *(f"{k}={v}" for k, v in env.items()), *argv]
    if sudo_user is not None:
        # -S with a fixed prompt: sudo reads a password from the channel only when it asks;
        # -n: with no password to give, fail at once instead of waiting for one.
        auth = ["-S", "-p", SUDO_PROMPT.decode("ascii")] if sudo_password else ["-n"]
        words = ["sudo", *auth, "-H", "-u", sudo_user, "--", *words]
    return " ".join(shlex.quote(word) for word in words)
