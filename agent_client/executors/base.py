"""What every executor shares: spawning with a child-side setup, and bounded output capture.

The child-side setup runs after fork and before exec (``preexec_fn``); a failure there is
written to a private status pipe as ``code<TAB>message`` so the parent can report
``exec.drop_failed`` or ``exec.cwd`` instead of a generic error. The job gets its own
process group, stdin from /dev/null, and every descriptor above 2 closed.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agent_client.errors import ExecCwdRefused, ExecDropFailed, ExecError
from realms.text import is_ascii_number

DRAIN_SECONDS = 1.0
POLL_SECONDS = 0.1
_ERRORS: dict[str, type[ExecError]] = {
    "exec.drop_failed": ExecDropFailed,
    "exec.cwd": ExecCwdRefused,
}


ChildSetup = Callable[[int], None]


class ChildSetupFailed(Exception):
    """Raised inside the child to abort before exec (after the status pipe was written)."""


@dataclass(slots=True)
class ExecResult:
    """What a job did: exit code (None if killed), output tails, and an exec code if it did not finish."""

    exit_code: int | None
    stdout_tail: str
    stderr_tail: str
    code: str | None = None
    reason: str | None = None
    dropped_env: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.code is None and self.exit_code == 0


def child_fail(status_fd: int, code: str, message: str) -> None:
    """In the child: report ``code`` to the parent and abort the exec."""
    try:
        os.write(status_fd, f"{code}\t{message}".encode("utf-8", "replace")[:4000])
    finally:
        raise ChildSetupFailed(code)


def spawn(
    argv: Sequence[str],
    env: Mapping[str, str],
    setup: Callable[[int], None],
    *,
    cwd: str | None = None,
    stdin_line: bytes | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a new process group; ``setup(status_fd)`` runs in the child before exec.

    ``stdin_line`` (a sudo password) is written to a pipe that is the child's standard input,
    then the pipe is closed: the job itself finds its input at end of file, as with /dev/null."""
    read_fd, write_fd = os.pipe()  # both close-on-exec (PEP 446)
    try:
        try:
            process = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL if stdin_line is None else subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # Why: no agent descriptor (the journal, the STS connection, the key) may leak
                # into a job running as another account.
                close_fds=True,
                process_group=0,
                preexec_fn=lambda: setup(write_fd),
                restore_signals=True,
            )
        except (subprocess.SubprocessError, OSError) as exc:
            os.close(write_fd)
            write_fd = -1
            status = _read_all(read_fd)
            if status:
                code, _, message = status.partition("\t")
                raise _ERRORS.get(code, ExecError)(message) from None
            raise ExecError(f"cannot start {argv[0][:80]!r}: {exc}") from None
    finally:
        if write_fd >= 0:
            os.close(write_fd)
        os.close(read_fd)
    if stdin_line is not None:
        assert process.stdin is not None
        try:
            # A line is far below the pipe's buffer, so this never blocks on a slow reader.
            process.stdin.write(stdin_line)
            process.stdin.flush()
        except BrokenPipeError:
            pass  # the child ended before reading; its exit status tells what happened
        finally:
            process.stdin.close()
    return process


def _read_all(fd: int) -> str:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def kill_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the job's process group, then SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            process.wait(timeout=wait)
            # The leader is gone; make sure nothing it left in the group survives.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            return
        except subprocess.TimeoutExpired:
            continue


_PR_SET_CHILD_SUBREAPER = 36  # prctl(2), Linux >= 3.4


def set_child_subreaper(enabled: bool) -> bool:
    """Make the agent the reaper of its orphaned descendants (prctl PR_SET_CHILD_SUBREAPER)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def children_of(uid: int) -> set[int]:
    """Pids of this process's children that run with real uid ``uid`` (from /proc)."""
    found: set[int] = set()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not is_ascii_number(entry):
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                if int(stat.read().rsplit(")", 1)[1].split()[1]) != me:
                    continue
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as status:
                real_uid = next(line for line in status if line.startswith("Uid:")).split()[1]
        except (OSError, StopIteration, ValueError, IndexError):
            continue
        if int(real_uid) == uid:
            found.add(int(entry))
    return found


def kill_orphans(uid: int, known: set[int]) -> int:
    """SIGKILL and reap the job's descendants that left its process group (``setsid``) and were
    re-parented to the agent as their subreaper; returns how many. Never root's or our uid."""
    if uid in (0, os.getuid()):
        return 0
    killed = 0
    for _ in range(100):  # each round may re-parent the victims' own children to us
        victims = []
        for pid in children_of(uid) - known:
            try:
                os.kill(pid, signal.SIGKILL)
                victims.append(pid)
            except (ProcessLookupError, PermissionError):
                continue
        if not victims:
            break
        for pid in victims:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        killed += len(victims)
    return killed


def capture(
    process: subprocess.Popen[bytes],
    *,
    timeout: float,
    output_bytes: int,
    kill_grace: float,
    cancel: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
) -> ExecResult:
    """Wait for the job, keeping the last ``output_bytes`` of each stream; kill the group on timeout/cancel."""
    assert process.stdout is not None and process.stderr is not None
    tails = {process.stdout.fileno(): bytearray(), process.stderr.fileno(): bytearray()}
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    code: str | None = None
    with selectors.DefaultSelector() as selector:
        for fd in tails:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            if on_tick is not None:
                on_tick()
            now = time.monotonic()
            if cancel is not None and cancel.is_set():
                code = "exec.cancelled"
                break
            if now >= deadline:
                code = "exec.timeout"
                break
            if exited_at is None and process.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > DRAIN_SECONDS:
                break  # a background child still holds the pipes; it is killed below
            for key, _ in selector.select(POLL_SECONDS):
                fd = int(key.fd)
                chunk = os.read(fd, 65536)
                if not chunk:
                    selector.unregister(fd)
                    continue
                tail = tails[fd]
                tail += chunk
                # Why: a job must not be able to exhaust the agent's memory with output.
                if len(tail) > output_bytes:
                    del tail[: len(tail) - output_bytes]
    while code is None and process.poll() is None:
        # The job closed its output but still runs: wait for it within the same bounds.
        if cancel is not None and cancel.is_set():
            code = "exec.cancelled"
        elif time.monotonic() >= deadline:
            code = "exec.timeout"
        else:
            if on_tick is not None:
                on_tick()
            time.sleep(POLL_SECONDS)
    # Why: the job's whole process group goes, so nothing it started outlives the job.
    kill_group(process, 0.0 if code is None else kill_grace)
    process.stdout.close()
    process.stderr.close()
    exit_code = process.wait()
    out, err = (bytes(b).decode("utf-8", "replace") for b in tails.values())
    if code == "exec.timeout":
        return ExecResult(None, out, err, code, f"job ran longer than {timeout:g}s; its process group was killed")
    if code == "exec.cancelled":
        return ExecResult(None, out, err, code, "job was cancelled; its process group was killed")
    return ExecResult(exit_code, out, err)
