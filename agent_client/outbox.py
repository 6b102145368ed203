"""The agent's durable outbox: every result is kept on disk until the STS has answered for it.

A finished job's result is written to a private directory (one file per job, fsync'd, then the
directory fsync'd) before the agent tries to deliver it. Delivery sends the oldest results first,
in batches (``POST /api/v1/agent/results``). A result leaves the outbox only when the STS answered
for that job: recorded, recorded earlier (an idempotent retry), or refused for good (another
result is there, the job is not this node's). When the STS cannot be reached the results stay,
and delivery is retried with exponential backoff (jittered, ``agent_client.backoff``), across
agent restarts. The STS accepts a result for a job it marked ``lost`` meanwhile (a late
result): it is recorded and the job never reruns.

The clock and the jitter's random source are injectable so that a test can step through a long
outage without sleeping.
"""

from __future__ import annotations

import json
import logging
import os
import random
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent_client.backoff import jittered
from agent_client.errors import UnsafeFileMode
from agent_client.file_modes import check_paths, require_safe
from realms.errors import JobstsError
from realms.wire.documents import MAX_BATCH, ItemOutcome, Result, parse_result
from realms.wire.errors import JobInvalidSpec

log = logging.getLogger(__name__)

BASE_DELAY = 1.0
MAX_DELAY = 60.0
SUFFIX = ".result.json"

Sender = Callable[[list[tuple[str, Result]]], list[ItemOutcome]]


def _require_private_directory(directory: Path) -> None:
    info = os.lstat(directory)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeFileMode(f"refusing to start: {directory}: is not a directory", file=str(directory))
    if info.st_uid not in (0, os.geteuid()) or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UnsafeFileMode(
            f"refusing to start: {directory}: must be owned by the agent and private (mode 0700), "
            f"is {stat.S_IMODE(info.st_mode):04o}",
            file=str(directory),
        )
    # The directories above it: the same checks as every file the agent trusts.
    problems = [line for line in check_paths([directory]) if not line.startswith(f"{directory}:")]
    if problems:
        raise UnsafeFileMode(f"refusing to start: {problems[0]}", file=problems[0].split(":", 1)[0])


class Outbox:
    """Results waiting for the STS, oldest first; safe to use from several threads."""

    def __init__(
        self,
        directory: Path,
        *,
        check_modes: bool = True,
        clock: Callable[[], float] = time.monotonic,
        base_delay: float = BASE_DELAY,
        max_delay: float = MAX_DELAY,
        draw: Callable[[], float] = random.random,
    ) -> None:
        # Why: whoever can write here can forge what the node reports; private, like the journal.
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if check_modes:
            _require_private_directory(directory)
            kept = sorted(directory.iterdir())
            require_safe(kept, private=kept)
        self.directory = directory
        self._clock, self._base, self._max, self._draw = clock, base_delay, max_delay, draw
        self._lock = threading.Lock()
        self._failures = 0
        self._next_try = float("-inf")
        self._sequence = time.time_ns()

    def put(self, job_id: str, result: Result) -> None:
        """Keep ``result`` durably (written, fsync'd, renamed into place, directory fsync'd)."""
        document = json.dumps({"job_id": job_id, "result": result.as_document()}).encode("utf-8")
        with self._lock:
            self._sequence = max(self._sequence + 1, time.time_ns())
            name = f"{self._sequence:020d}-{job_id}{SUFFIX}"
        staging = self.directory / f".{name}.tmp"
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, document)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staging, self.directory / name)
        directory = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{SUFFIX}"))

    def __len__(self) -> int:
        return len(self._files())

    def pending(self, limit: int = MAX_BATCH) -> list[tuple[Path, str, Result]]:
        """Up to ``limit`` kept results, oldest first. A file that does not parse is set aside."""
        found: list[tuple[Path, str, Result]] = []
        for path in self._files():
            if len(found) >= limit:
                break
            try:
                raw = json.loads(path.read_bytes())
                found.append((path, str(raw["job_id"]), parse_result(raw["result"])))
            except (OSError, ValueError, KeyError, TypeError, JobInvalidSpec) as exc:
                log.error("outbox file %s is unreadable (%s); set aside as .bad", path.name, exc)
                path.replace(path.with_suffix(".bad"))
        return found

    def due(self) -> bool:
        """Whether a delivery may be tried now (the backoff after a failure has passed)."""
        return bool(self._files()) and self._clock() >= self._next_try

    def deliver(self, send: Sender) -> int:
        """Send the oldest batch if due; returns how many results left the outbox. A failure
        (the STS unreachable or refusing the whole call) keeps them and backs off."""
        with self._lock:
            if self._clock() < self._next_try:
                return 0
            batch = self.pending()
            if not batch:
                return 0
            try:
                outcomes = send([(job_id, result) for _, job_id, result in batch])
            except JobstsError as exc:
                self._failures += 1
                # Jittered: agents cut off by the same outage do not all retry at the same instants.
                delay = jittered(min(self._max, self._base * 2 ** (self._failures - 1)), self._draw)
                self._next_try = self._clock() + delay
                log.warning("%d result(s) kept in the outbox (%s); next try in %.1fs", len(batch), exc.code, delay)
                return 0
            self._failures, self._next_try = 0, float("-inf")
            answered = {outcome.job_id: outcome for outcome in outcomes}
            delivered = 0
            for path, job_id, _ in batch:
                outcome = answered.get(job_id)
                if outcome is None:
                    continue  # not answered: kept for the next delivery
                if outcome.code is not None:
                    log.error("result of job %s refused by the STS: %s: %s", job_id, outcome.code, outcome.message)
                elif outcome.late:
                    log.warning("result of job %s delivered late: the STS had marked it lost", job_id)
                path.unlink(missing_ok=True)
                delivered += 1
            return delivered

    def flush(self, send: Sender) -> None:
        """Deliver until empty or until a delivery fails (then the backoff applies)."""
        while self.deliver(send):
            pass
