"""A bare agent loop run as a separate process by the fault tests (``python -m tests.jobs.agents``).

It drives the same dispatch code the HTTP endpoints call (lease, start, result), on its own
engine and connection pool, and prints one JSON line per job it handled.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from realms.wire.documents import parse_result
from sts.config import JobSettings, StsConfig
from sts.jobs import dispatch, results
from sts.services import Services, build_services


def agent_env(database_url: str, key_file: Path, lease_seconds: int = 60) -> Services:
    """The job manager's services on their own engine, with no realm (agents never sign)."""
    config = StsConfig(
        base_url="https://sts.test",
        database_url=database_url,
        master_key_file=key_file,
        master_key_env=None,
        realms={},
        audience="https://sts.test/api",
        jobs=JobSettings(lease_seconds=lease_seconds),
    )
    return build_services(config, migrate=False)


def run(env: Services, node: str, name: str, expected: int, deadline: float) -> None:
    """Lease until ``expected`` jobs are finished by all agents together (or the deadline)."""
    result = parse_result({"outcome": "succeeded", "exit_code": 0, "stdout_tail": name, "stderr_tail": ""})
    from sqlalchemy import func, select

    from sts.jobs.models import Job

    while time.monotonic() < deadline:
        found = dispatch.lease(env, node, 0)
        if found is None:
            with env.session() as session:
                done = session.scalar(select(func.count()).select_from(Job).where(Job.state == "succeeded"))
            if (done or 0) >= expected:
                return
            time.sleep(0.01)
            continue
        dispatch.start(env, node, found.job.id, found.job.attempts)
        results.report(env, node, found.job.id, result)
        print(json.dumps({"job": found.job.id, "agent": name, "attempt": found.job.attempts}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--key-file", required=True, type=Path)
    parser.add_argument("--node", default="node1")
    parser.add_argument("--name", default=str(os.getpid()))
    parser.add_argument("--expected", type=int, default=0)
    parser.add_argument("--go-file", type=Path)
    parser.add_argument("--die-after-start", action="store_true")
    args = parser.parse_args()
    env = agent_env(args.database_url, args.key_file)
    try:
        print(json.dumps({"ready": args.name}), flush=True)
        while args.go_file is not None and not args.go_file.exists():
            time.sleep(0.01)
        if args.die_after_start:
            found = dispatch.lease(env, args.node, 5)
            if found is None:
                sys.exit(3)
            dispatch.start(env, args.node, found.job.id)
            print(json.dumps({"started": found.job.id}), flush=True)
            time.sleep(3600)  # "executing" until killed
        run(env, args.node, args.name, args.expected, time.monotonic() + 120)
    finally:
        env.db.dispose()


if __name__ == "__main__":
    main()
