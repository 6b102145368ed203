"""The agent finds each realm's issuer in discovery, and ``jobsts agent check --online`` reports
connectivity, discovery, JWKS, an agent token and the clock skew, against a real STS whose
``base_url`` is not the URL the agent reaches it at (as behind a proxy or in compose)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from agent_client.api.agent import AgentApi
from agent_client.api.auth import load_node_key
from agent_client.commands.agent import agent
from agent_client.commands.online_check import check_online, clock_skew
from agent_client.config import load_agent_config
from agent_client.config_issuers import IssuerMismatch, with_discovered_issuers
from realms.errors import JobstsError
from tests.cli.embedded_sts import EmbeddedSts, write_sts_files
from tests.loopback import RefusedPort

PUBLIC = "http://sts.example.internal:8080"  # the STS's own base_url; the agent uses the loopback URL
AGENT_TOML = """
[agent]
node_id = "node1"
realm = "jobmgr"
sts_url = "{url}"
executor = "self"
trusted_realms = ["cellB"]

[job_types]
run = "operator"
{extra}
"""


class Setup:
    def __init__(self, server: EmbeddedSts, directory: Path) -> None:
        self.sts, self.directory = server, directory

    def config(self, extra: str = "") -> Path:
        path = self.directory / "agent.toml"
        path.write_text(AGENT_TOML.format(url=self.sts.url, extra=extra))
        path.chmod(0o600)
        return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("sts")
    server = EmbeddedSts(write_sts_files(directory, PUBLIC))
    agent_dir = directory / "agent"
    agent_dir.mkdir(mode=0o700)
    server.register_node("node1", agent_dir / "node.key")
    try:
        yield Setup(server, agent_dir)
    finally:
        server.close()


def test_the_issuer_comes_from_discovery_not_from_sts_url(setup: Setup) -> None:
    config = load_agent_config(setup.config())
    assert config.issuer("jobmgr") == f"{setup.sts.url}/realms/jobmgr"  # derived: wrong behind a proxy
    found = with_discovered_issuers(config)
    assert found.issuer("jobmgr") == f"{PUBLIC}/realms/jobmgr" and found.issuer("cellB") == f"{PUBLIC}/realms/cellB"
    key = load_node_key(config.key_file, config.key_algorithm)
    # The STS takes an assertion only for its own token endpoint, as its issuer names it.
    with AgentApi.connect(config.sts_url, "node1", "jobmgr", key, config.key_algorithm) as derived:
        with pytest.raises(JobstsError, match="assertion audience"):
            derived.revocations()
    with AgentApi.connect(config.sts_url, "node1", "jobmgr", key, config.key_algorithm,
                          audience=found.assertion_audience) as discovered:  # fmt: skip
        assert discovered.revocations() == {}


def test_a_pinned_issuer_must_match_discovery(setup: Setup) -> None:
    pinned = load_agent_config(setup.config(f'[issuers]\njobmgr = "{PUBLIC}/realms/jobmgr"\n'))
    assert with_discovered_issuers(pinned).issuer("jobmgr") == f"{PUBLIC}/realms/jobmgr"
    # Why: sts_url reaching another STS (or a changed base_url) must not silently re-point trust.
    wrong = load_agent_config(setup.config('[issuers]\njobmgr = "https://other.example/realms/jobmgr"\n'))
    with pytest.raises(IssuerMismatch, match="is not the one \\[issuers\\] expects"):
        with_discovered_issuers(wrong)
    report = check_online(wrong)
    assert any(p.startswith("online discovery jobmgr: agent.issuer_mismatch") for p in report.problems)


def test_check_online_reports_every_step(setup: Setup) -> None:
    done = CliRunner().invoke(agent, ["check", "--config", str(setup.config()), "--online", "--json"])
    report = json.loads(done.output)
    checks = {entry["check"]: entry for entry in report["online"]["checks"]}
    assert set(checks) >= {"connect", "clock", "discovery jobmgr", "discovery cellB", "jwks jobmgr", "jwks cellB",
                           "token"}  # fmt: skip
    assert all(entry["verdict"] == "ok" for entry in checks.values()), checks
    assert f"issuer {PUBLIC}/realms/jobmgr (not {setup.sts.url}/realms/jobmgr" in checks["discovery jobmgr"]["detail"]
    assert abs(report["online"]["clock_skew_seconds"]) < 30  # same host, same clock
    text = CliRunner().invoke(agent, ["check", "--config", str(setup.config()), "--online"])
    assert "online token: ok: agent token for node node1 works" in text.output


def test_clock_skew_is_read_from_the_date_header() -> None:
    response = httpx.Response(200, headers={"Date": "Wed, 02 Dec 2026 03:00:00 GMT"})
    at = 1_796_180_500.0  # 100 s after that Date
    assert clock_skew(response, at - 1, at + 1) == pytest.approx(-100.0)
    assert clock_skew(httpx.Response(200), at, at) is None


def test_check_online_reports_an_unreachable_sts(setup: Setup) -> None:
    with RefusedPort() as refused:
        text = setup.config().read_text().replace(setup.sts.url, f"http://127.0.0.1:{refused.port}")
        (setup.directory / "agent.toml").write_text(text)
        report = check_online(load_agent_config(setup.directory / "agent.toml"))
    assert report.problems and report.problems[0].startswith("online connect: ")
