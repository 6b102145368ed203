"""The real agent (``agent_client.loop.Agent``) in its own process, for kill -9 tests:
``python -m tests.security.agent_process --sts URL --node ID --key PEM --state DIR --account NAME
[--pause-at leased|recorded|started|ran] [--seconds N]``.

With ``--pause-at`` it prints ``AT <step>`` at that point of the lifecycle and sleeps there
(the test kills it with SIGKILL). Otherwise it handles jobs for ``--seconds`` and prints one
``DONE <outcome>`` line per job. ``build_agent`` is also used in-process by test_faults.py.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from agent_client.api import AgentApi, load_node_key
from agent_client.config import Limits, MappingConfig, MappingRule
from agent_client.decision import NodeDecider, NodePolicy
from agent_client.journal import StartedJournal
from agent_client.loop import Agent, RevocationSet
from agent_client.outbox import Outbox
from agent_client.trust_store import TrustStore
from authz_tables.decision import Snapshot
from authz_tables.entries import parse_entry
from authz_tables.roles import Role
from realms.wire.documents import Claim, ItemOutcome

JOHN = "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"


def build_agent(sts: str, node: str, key: Path, state: Path, account: str, *, leeway: int = 30) -> Agent:
    """A node in realm jobmgr that lets john run ``shell`` jobs as ``account``."""
    client = AgentApi.connect(sts, node, "jobmgr", load_node_key(key, "ES256"), "ES256")
    trust = TrustStore(
        realms=frozenset({"jobmgr"}), issuer_of=lambda realm: f"{sts}/realms/{realm}", cache_dir=None, fetch=client.jwks
    )
    policy = NodePolicy(
        node,
        "jobmgr",
        frozenset(),
        frozenset(),
        {"shell": Role.OPERATOR},
        MappingConfig(rules=(MappingRule("realm", "jobmgr", account),), allow_root=account == "root"),
        leeway,
    )
    journal = StartedJournal(state / "started.sqlite")
    revocations = RevocationSet(client.revocations)
    decider = NodeDecider(
        policy, trust, Snapshot([parse_entry(JOHN, "operator")]), revoked=revocations, journal=journal
    )
    executor = "setuid" if os.geteuid() == 0 else "self"
    config: Any = SimpleNamespace(executor=executor, limits=Limits(kill_grace=1.0), poll_wait=0)
    outbox = Outbox(state / "outbox")
    return Agent(config, client, decider, journal, revocations, threading.Event(), outbox)


def _pause(step: str) -> None:
    print(f"AT {step}", flush=True)
    time.sleep(3600)


def install_pause(agent: Agent, step: str) -> None:
    """Stop the agent (until killed) right at ``step`` of the lifecycle."""
    if step == "leased":
        setattr(agent.decider, "decide", lambda *a, **k: _pause(step))  # noqa: B010
    elif step == "recorded":
        # The loop records every job of a lease in one commit (``record_many``).
        record_many = agent.journal.record_many

        def recorded(*args: Any, **kwargs: Any) -> list[bool]:
            done = record_many(*args, **kwargs)
            _pause(step)
            return done

        agent.journal.record_many = recorded  # type: ignore[method-assign]
    elif step == "started":
        claim = agent.client.claim

        def started(claims: list[Claim]) -> list[ItemOutcome]:
            claim(claims)
            _pause(step)
            return []

        agent.client.claim = started  # type: ignore[method-assign]
    elif step == "ran":
        # Killed before the result reached the outbox: nothing on disk to deliver later.
        agent.outbox.put = lambda *a, **k: _pause(step)  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown step {step}")


def _count(path: Path, rounds: int) -> None:
    """Tell the test how many rounds of its loop the agent has finished (written whole, then renamed)."""
    partial = path.with_suffix(".partial")
    partial.write_text(str(rounds))
    partial.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sts", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--key", required=True, type=Path)
    parser.add_argument("--state", required=True, type=Path)
    parser.add_argument("--account", required=True)
    parser.add_argument("--pause-at")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--stop-file", type=Path, help="stop (exit 0) once this file exists")
    args = parser.parse_args()
    agent = build_agent(args.sts, args.node, args.key, args.state, args.account)
    try:
        if args.pause_at:
            install_pause(agent, args.pause_at)
        print("READY", flush=True)
        deadline = time.monotonic() + args.seconds
        rounds = 0
        while time.monotonic() < deadline and not (args.stop_file and args.stop_file.exists()):
            outcome = agent.run_once()
            rounds += 1
            if args.stop_file:
                _count(args.stop_file.with_suffix(".rounds"), rounds)
            if outcome is None:
                time.sleep(0.1)
            else:
                print(f"DONE {outcome}", flush=True)
    finally:
        agent.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
