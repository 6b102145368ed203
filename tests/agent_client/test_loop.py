"""The poll loop and STS client against a fake STS on loopback (the real STS is the e2e issue's job)."""

from __future__ import annotations

import json
import os
import pwd
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ec

from agent_client.commands.agent import agent as agent_cli
from agent_client.config import load_agent_config
from agent_client.errors import StsUnavailable
from agent_client.loop import Agent, open_agent
from authz_tables.roles import Role
from authz_tables.store import AuthzTable
from realms.identity.access_id import AccessId
from tests.agent_client.conftest import NODE, OPS_JM, OWN, TRUSTED, UNTRUSTED, make_job, mint, write_node_key
from tests.agent_client.fake_sts import FakeState

OWN_ACCOUNT = pwd.getpwuid(os.geteuid()).pw_name

CONFIG = """
[agent]
node_id = "{node}"
realm = "{own}"
sts_url = "{sts}"
trusted_realms = ["{trusted}"]
executor = "{executor}"
poll_wait = 0

[job_types]
run = "operator"

[mapping]
allow_root = {allow_root}

[[mapping.rules]]
realm = "{trusted}"
account = "{account}"
"""


def write_agent_dir(directory: Path, sts: str, key: ec.EllipticCurvePrivateKey) -> Path:
    directory.mkdir(mode=0o700)
    write_node_key(directory, key)
    config = directory / "agent.toml"
    config.write_text(
        CONFIG.format(
            node=NODE,
            own=OWN,
            trusted=TRUSTED,
            sts=sts,
            account=OWN_ACCOUNT,
            executor="setuid" if os.geteuid() == 0 else "self",
            allow_root=str(os.geteuid() == 0).lower(),
        )
    )
    config.chmod(0o600)
    with AuthzTable(f"sqlite:///{directory / 'authz.sqlite'}", upgrade=True) as table:
        table.grant(AccessId.parse(OPS_JM), Role.OPERATOR, changed_by="local:test")
    return config


@pytest.fixture
def agent(tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey) -> Iterator[Agent]:
    config = load_agent_config(write_agent_dir(tmp_path / "agent", fake.base_url, node_key), environ={})
    worker = open_agent(config)
    try:
        yield worker
    finally:
        worker.close()


def lease_for(fake: FakeState, job: dict[str, Any] | None = None, **claims: Any) -> dict[str, Any]:
    job = job or make_job({"argv": ["/bin/echo", "hello from the job"]})
    realm = claims.pop("realm", job["realm"])
    token = mint(job, realm=realm, iss=f"{fake.base_url}/realms/{realm}", **claims)
    return {"job": job, "job_token": token, "lease_expires_at": 2_000_000_000}


def test_allowed_job_is_started_run_and_reported(agent: Agent, fake: FakeState) -> None:
    lease = lease_for(fake, jti="allowed-jti")
    fake.leases.append(lease)
    assert agent.run_once() == "succeeded"
    job_id = lease["job"]["id"]
    assert fake.started == [job_id]
    result = fake.results[job_id]
    assert result["outcome"] == "succeeded" and result["exit_code"] == 0
    assert result["stdout_tail"] == "hello from the job\n"
    assert result["account"] == OWN_ACCOUNT
    assert [s["step"] for s in result["trace"]] == list("abcdefg")
    assert all(s["verdict"] == "pass" for s in result["trace"])
    assert "mapping rule 0" in result["reason"]
    assert agent.journal.seen("allowed-jti")


def test_refused_job_is_reported_without_start(agent: Agent, fake: FakeState) -> None:
    lease = lease_for(fake, make_job(job_type="reboot"))
    fake.leases.append(lease)
    assert agent.run_once() == "refused"
    result = fake.results[lease["job"]["id"]]
    assert (result["outcome"], result["code"]) == ("refused", "job.unknown_type")
    assert result["exit_code"] is None and result["account"] is None
    assert [s["verdict"] for s in result["trace"]] == ["pass", "pass", "pass", "fail", "skip", "skip"]
    assert fake.started == []


def test_untrusted_realm_is_refused_without_start(agent: Agent, fake: FakeState) -> None:
    lease = lease_for(fake, make_job(realm=UNTRUSTED))
    fake.leases.append(lease)
    assert agent.run_once() == "refused"
    assert fake.results[lease["job"]["id"]]["code"] == "realm.untrusted"
    assert fake.started == []


def test_replayed_lease_never_runs_twice(agent: Agent, fake: FakeState, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    job = make_job({"argv": ["/bin/sh", "-c", f"echo x >> {marker}"]})
    lease = lease_for(fake, job)
    fake.leases += [lease, json.loads(json.dumps(lease))]
    assert agent.run_once() == "succeeded"
    fake.results.clear()
    assert agent.run_once() == "refused"
    assert fake.results[job["id"]]["code"] == "token.replayed"
    assert fake.started == [job["id"]]
    assert marker.read_text() == "x\n"


def test_crash_between_record_and_start_refuses_the_release(agent: Agent, fake: FakeState, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    lease = lease_for(fake, make_job({"argv": ["/usr/bin/touch", str(marker)]}), jti="crashed-jti")
    # The previous agent process recorded the jti, then died before /start.
    agent.journal.record("crashed-jti", lease["job"]["id"], 2_000_000_000)
    fake.leases.append(lease)
    assert agent.run_once() == "refused"
    assert fake.results[lease["job"]["id"]]["code"] == "token.replayed"
    assert fake.started == [] and not marker.exists()


def test_record_is_durable_before_start(agent: Agent, fake: FakeState) -> None:
    lease = lease_for(fake, jti="durable-jti")
    fake.lease_lost.add(lease["job"]["id"])  # /start fails: the record must already exist
    fake.leases.append(lease)
    assert agent.run_once() == "lease_lost"
    assert agent.journal.seen("durable-jti")


def test_lost_lease_means_no_run_and_no_result(agent: Agent, fake: FakeState, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    lease = lease_for(fake, make_job({"argv": ["/usr/bin/touch", str(marker)]}))
    fake.lease_lost.add(lease["job"]["id"])
    fake.leases.append(lease)
    assert agent.run_once() == "lease_lost"
    assert not marker.exists() and fake.results == {}


def test_revoked_token_is_refused(agent: Agent, fake: FakeState) -> None:
    lease = lease_for(fake, jti="revoked-one")
    fake.revoked.append({"jti": "revoked-one", "exp": 2_000_000_000})
    fake.leases.append(lease)
    assert agent.run_once() == "refused"
    assert fake.results[lease["job"]["id"]]["code"] == "token.revoked"


def test_failed_job_reports_exit_code_and_stderr(agent: Agent, fake: FakeState) -> None:
    lease = lease_for(fake, make_job({"argv": ["/bin/sh", "-c", "echo oops >&2; exit 3"]}))
    fake.leases.append(lease)
    assert agent.run_once() == "failed"
    result = fake.results[lease["job"]["id"]]
    assert (result["exit_code"], result["stderr_tail"], result["code"]) == (3, "oops\n", None)


def test_no_job_means_none(agent: Agent, fake: FakeState) -> None:
    assert agent.run_once() is None
    assert agent.run_once() is None
    assert fake.tokens_issued == 1  # the agent token is cached


def test_agent_token_is_renewed_after_a_401(agent: Agent, fake: FakeState) -> None:
    assert agent.run_once() is None  # fetches the first agent token
    agent.client.auth._token = "stale"  # the STS no longer accepts it
    assert agent.run_once() is None
    assert fake.tokens_issued == 2


def test_unreachable_sts_is_unavailable(tmp_path: Path, node_key: ec.EllipticCurvePrivateKey) -> None:
    config = load_agent_config(write_agent_dir(tmp_path / "agent", "http://127.0.0.1:9", node_key), environ={})
    worker = open_agent(config)
    try:
        with pytest.raises(StsUnavailable) as caught:
            worker.run(once=True)
        assert caught.value.code == "agent.sts_unavailable"
    finally:
        worker.close()


def test_agent_refuses_to_start_with_unsafe_modes(tmp_path: Path, node_key: ec.EllipticCurvePrivateKey) -> None:
    path = write_agent_dir(tmp_path / "agent", "http://127.0.0.1:9", node_key)
    (tmp_path / "agent" / "node.key").chmod(0o640)
    from agent_client.errors import UnsafeFileMode

    with pytest.raises(UnsafeFileMode, match=r"node\.key"):
        open_agent(load_agent_config(path, environ={}))


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_init_writes_a_private_key_and_a_loadable_template(tmp_path: Path) -> None:
    out = tmp_path / "node"
    result = CliRunner().invoke(
        agent_cli, ["init", "--node", "node7", "--realm", OWN, "--sts", "https://sts.test", "--dir", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert (out / "node.key").stat().st_mode & 0o777 == 0o600
    assert "BEGIN PUBLIC KEY" in result.output and '"kty": "EC"' in result.output
    config = load_agent_config(out / "agent.toml", environ={})
    assert (config.node_id, config.realm, config.executor) == ("node7", OWN, "setuid")
    again = CliRunner().invoke(
        agent_cli, ["init", "--node", "node7", "--realm", OWN, "--sts", "https://sts.test", "--dir", str(out)]
    )
    assert again.exit_code != 0 and "refusing to overwrite" in again.output


def test_cli_check_ok_and_problems(tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey) -> None:
    path = write_agent_dir(tmp_path / "agent", fake.base_url, node_key)
    result = CliRunner().invoke(agent_cli, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ok: node node1")
    path.chmod(0o666)
    bad = CliRunner().invoke(agent_cli, ["check", "--config", str(path)])
    assert bad.exit_code == 1 and "writable by group or others" in bad.output


def test_cli_explain_prints_each_step(tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey) -> None:
    path = write_agent_dir(tmp_path / "agent", fake.base_url, node_key)
    lease = lease_for(fake)
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(lease))
    result = CliRunner().invoke(agent_cli, ["explain", "--config", str(path), "--job", str(job_file)])
    assert result.exit_code == 0, result.output
    assert "(a) issuer trust" in result.output and f"verdict: run as {OWN_ACCOUNT}" in result.output
    token_file = tmp_path / "token"
    token_file.write_text(lease_for(fake, lease["job"], realm=UNTRUSTED)["job_token"])
    refused = CliRunner().invoke(
        agent_cli, ["explain", "--config", str(path), "--job", str(job_file), "--token", str(token_file)]
    )
    assert refused.exit_code == 1 and "verdict: refused: realm.untrusted" in refused.output
    assert fake.started == [] and fake.results == {}


def test_heartbeats_are_sent_while_the_job_runs(agent: Agent, fake: FakeState, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent_client.loop

    monkeypatch.setattr(agent_client.loop, "HEARTBEAT_SECONDS", 0.1)
    lease = lease_for(fake, make_job({"argv": ["/bin/sleep", "0.5"]}))
    fake.leases.append(lease)
    assert agent.run_once() == "succeeded"
    assert lease["job"]["id"] in fake.heartbeats


def test_second_agent_on_the_same_state_dir_refuses_to_start(agent: Agent) -> None:
    from agent_client.errors import AgentStateBusy
    from agent_client.journal import StartedJournal

    with pytest.raises(AgentStateBusy) as caught:
        StartedJournal(agent.config.journal_file)
    assert caught.value.code == "agent.state_busy"
    agent.journal.record("seen-by-explain", "job", 2_000_000_000)
    with StartedJournal(agent.config.journal_file, read_only=True) as snapshot:
        assert snapshot.seen("seen-by-explain")


def test_unrefreshable_revocation_list_fails_closed(tmp_path: Path) -> None:
    from agent_client.decision import NodeDecider
    from agent_client.loop import RevocationSet
    from agent_client.trust_store import TrustStore
    from tests.agent_client.conftest import DEFAULT_TABLE, issuer, policy, table, write_bundles

    def down() -> dict[str, int]:
        raise StsUnavailable("STS https://sts.test did not answer: ConnectError")

    revoked = RevocationSet(down)
    revoked.refresh(force=True)
    trust = TrustStore(
        realms=frozenset({OWN, TRUSTED}), issuer_of=issuer, cache_dir=None, fetch=None,
        bundles=write_bundles(tmp_path / "trust"),
    )  # fmt: skip
    job = make_job()
    decision = NodeDecider(policy(), trust, table(*DEFAULT_TABLE), revoked=revoked).decide(job, mint(job))
    assert (decision.allowed, decision.code) == (False, "trust.unavailable")
    assert "revocation list" in (decision.reason or "")


def test_cli_run_once(
    tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent_client.commands.agent

    monkeypatch.setattr(agent_client.commands.agent, "setup_logging", lambda level, fmt: None)
    path = write_agent_dir(tmp_path / "agent", fake.base_url, node_key)
    lease = lease_for(fake)
    fake.leases.append(lease)
    result = CliRunner().invoke(agent_cli, ["run", "--config", str(path), "--once"])
    assert result.exit_code == 0, result.output
    assert fake.results[lease["job"]["id"]]["outcome"] == "succeeded"


def test_logs_never_contain_tokens(agent: Agent, fake: FakeState, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    allowed, refused = lease_for(fake), lease_for(fake, make_job(job_type="reboot"))
    fake.leases += [allowed, refused]
    assert agent.run_once() == "succeeded"
    assert agent.run_once() == "refused"
    for lease in (allowed, refused):
        signature = lease["job_token"].rsplit(".", 1)[1]
        assert signature not in caplog.text
    assert "agent-token-" not in caplog.text


def test_jobs_leased_together_are_recorded_in_one_commit_before_their_claim(
    agent: Agent, fake: FakeState, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor, wait

    from agent_client.journal import StartedJournal
    from realms.wire.documents import Claim, ItemOutcome

    markers = [tmp_path / f"ran{i}" for i in range(4)]
    jobs = [make_job({"argv": ["/usr/bin/touch", str(marker)]}) for marker in markers]
    # The fourth job's token reuses the first one's jti: a replay inside one batch.
    leases = [lease_for(fake, job, jti=f"batch-{i}") for i, job in enumerate(jobs[:3])]
    leases.append(lease_for(fake, jobs[3], jti="batch-0"))
    fake.leases += leases
    jti_of = {lease["job"]["id"]: f"batch-{i}" for i, lease in enumerate(leases[:3])}

    statements: list[str] = []
    agent.journal._db.set_trace_callback(statements.append)
    # FULL: each COMMIT of the record returns only once synced to disk, so commits count syncs.
    assert agent.journal._db.execute("PRAGMA synchronous").fetchone() == (2,)
    durable_at_claim: list[dict[str, bool]] = []
    claim = agent.client.claim

    def checked_claim(claims: list[Claim]) -> list[ItemOutcome]:
        # Another reader of the file (as after a crash) already sees every record being claimed.
        with StartedJournal(agent.config.journal_file, read_only=True) as snapshot:
            durable_at_claim.append({c.job_id: snapshot.seen(jti_of[c.job_id]) for c in claims})
        return claim(claims)

    agent.client.claim = checked_claim  # type: ignore[method-assign]
    running: set[Future[str]] = set()
    with ThreadPoolExecutor(max_workers=4) as pool:
        agent._fill_slots(4, pool, running, threading.Event())
        assert [s for s in statements if s in ("BEGIN IMMEDIATE", "COMMIT")] == ["BEGIN IMMEDIATE", "COMMIT"]
        wait(running)
    assert [f.result() for f in running] == ["succeeded"] * 3
    assert durable_at_claim == [{job["id"]: True for job in jobs[:3]}]
    assert sorted(fake.started) == sorted(job["id"] for job in jobs[:3])
    assert fake.results[jobs[3]["id"]]["code"] == "token.replayed"
    assert [marker.exists() for marker in markers] == [True, True, True, False]
