"""The decision for jobs on remote hosts and with credential keys (no sshd needed).

The remote host is a scope (``remote:<name>``) beside ``*``; a credential key is usable only
with a grant that names ``credential:<key>``; unknown hosts, missing or foreign keys and
sudo users a host does not list are each refused with their own code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import pytest

from agent_client.credentials.local_use import agent_account
from agent_client.credentials.store import CredentialsConfig, CredentialStore
from agent_client.decision import AgentDecision, NodeDecider
from agent_client.journal import StartedJournal
from agent_client.remote.hosts import RemoteHost, parse_host_key
from agent_client.trust_store import TrustStore
from tests.agent_client.conftest import JOHN_JM, OPS_JM, make_job, mint, policy, table

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl host"
HOSTS = {
    "web1": RemoteHost("web1", "192.0.2.10", parse_host_key(HOST_KEY), sudo_users=frozenset({"liberty"})),
    "web2": RemoteHost("web2", "192.0.2.11", parse_host_key(HOST_KEY)),
}


@pytest.fixture
def store(tmp_path: Path) -> CredentialStore:
    directory = tmp_path / "agent"
    directory.mkdir(mode=0o700)
    made = CredentialStore(CredentialsConfig(directory / "credentials.enc", directory / "credentials.key"))
    made.put("web1-deploy", "deploy", password="s3cret")
    made.put("web2-deploy", "deploy", password="s3cret")
    return made


def decider_with(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore, *rows: tuple[str, ...]
) -> NodeDecider:
    return NodeDecider(
        replace(policy(), remote_hosts=HOSTS), trust, table(*rows), journal=journal, credentials=store.infos
    )


def decide(decider: NodeDecider, spec: Mapping[str, object]) -> AgentDecision:
    job = make_job(dict(spec))
    return decider.decide(job, mint(job))


GRANTS = (
    (OPS_JM, "operator", "allow", "remote:web1"),
    (OPS_JM, "operator", "allow", "credential:web1-deploy"),
)


def test_role_on_one_remote_host_only(trust: TrustStore, journal: StartedJournal, store: CredentialStore) -> None:
    decider = decider_with(trust, journal, store, *GRANTS, (OPS_JM, "operator", "allow", "credential:web2-deploy"))
    allowed = decide(decider, {"remote_host": "web1", "credential": "web1-deploy"})
    assert allowed.allowed, allowed.explain()
    assert allowed.remote is not None and allowed.remote.account == "deploy@web1" and allowed.account is None
    assert "remote login deploy@web1 with credential web1-deploy" in allowed.explain()
    other = decide(decider, {"remote_host": "web2", "credential": "web2-deploy"})
    assert (other.allowed, other.code) == (False, "authz.denied")
    # ...and the grant on remote:web1 does not cover local jobs on the node either.
    local = decide(decider, {})
    assert local.code == "authz.denied"


def test_node_wide_role_covers_every_remote_host(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    decider = decider_with(
        trust, journal, store, (OPS_JM, "operator"), (OPS_JM, "operator", "allow", "credential:web2-deploy")
    )
    assert decide(decider, {"remote_host": "web2", "credential": "web2-deploy"}).allowed


def test_deny_on_the_remote_host_wins(trust: TrustStore, journal: StartedJournal, store: CredentialStore) -> None:
    decider = decider_with(trust, journal, store, (OPS_JM, "operator"), (JOHN_JM, "operator", "deny", "remote:web1"),
                           (OPS_JM, "operator", "allow", "credential:web1-deploy"))  # fmt: skip
    decision = decide(decider, {"remote_host": "web1", "credential": "web1-deploy"})
    assert decision.code == "authz.denied" and "deny wins" in str(decision.reason)


def test_unknown_remote_host(trust: TrustStore, journal: StartedJournal, store: CredentialStore) -> None:
    decision = decide(
        decider_with(trust, journal, store, (OPS_JM, "operator")), {"remote_host": "web9", "credential": "x"}
    )
    assert decision.code == "remote.unknown_host" and "web9" in (decision.reason or "")
    assert [s.verdict for s in decision.trace][-2:] == ["fail", "skip"]


def test_node_wide_grant_does_not_open_a_credential(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    decider = decider_with(trust, journal, store, (OPS_JM, "operator"))
    decision = decide(decider, {"remote_host": "web1", "credential": "web1-deploy"})
    assert decision.code == "credential.not_granted"
    assert "--scope credential:web1-deploy" in (decision.reason or "")


def test_grant_on_another_credential_does_not_open_this_one(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    decider = decider_with(trust, journal, store, *GRANTS)
    assert decide(decider, {"remote_host": "web1", "credential": "web2-deploy"}).code == "credential.not_granted"


def test_lesser_role_on_the_credential_is_not_enough(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    decider = decider_with(trust, journal, store, GRANTS[0], (OPS_JM, "monitor", "allow", "credential:web1-deploy"))
    assert decide(decider, {"remote_host": "web1", "credential": "web1-deploy"}).code == "credential.not_granted"


def test_node_wide_deny_refuses_the_credential(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    decider = decider_with(
        trust, journal, store, GRANTS[0], GRANTS[1], (JOHN_JM, "operator", "deny", "credential:web1-deploy")
    )
    assert decide(decider, {"remote_host": "web1", "credential": "web1-deploy"}).code == "credential.not_granted"


def test_missing_credential_names_the_key_and_how_to_add_it(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    decider = decider_with(trust, journal, store, *GRANTS, (OPS_JM, "operator", "allow", "credential:nope"))
    decision = decide(decider, {"remote_host": "web1", "credential": "nope"})
    assert decision.code == "credential.missing"
    reason = decision.reason or ""
    assert "'nope'" in reason and "jobsts agent credentials add nope" in reason


def test_remote_job_needs_a_credential(trust: TrustStore, journal: StartedJournal, store: CredentialStore) -> None:
    decision = decide(decider_with(trust, journal, store, *GRANTS), {"remote_host": "web1"})
    assert decision.code == "agent.job_invalid" and "spec.credential" in (decision.reason or "")


def test_sudo_only_to_users_the_host_lists(trust: TrustStore, journal: StartedJournal, store: CredentialStore) -> None:
    decider = decider_with(trust, journal, store, *GRANTS)
    ok = decide(decider, {"remote_host": "web1", "credential": "web1-deploy", "sudo_user": "liberty"})
    assert ok.allowed and ok.remote is not None and ok.remote.account == "liberty@web1"
    refused = decide(decider, {"remote_host": "web1", "credential": "web1-deploy", "sudo_user": "root"})
    assert refused.code == "remote.sudo_not_allowed"


def test_local_job_uses_only_a_password_of_the_agent_or_the_mapped_account(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    store.put("sudo-me", agent_account(), password="s3cret")
    store.put("my-key", agent_account(), private_key="not read here")
    grants = [(OPS_JM, "operator", "allow", f"credential:{key}") for key in ("sudo-me", "my-key")]
    decider = decider_with(trust, journal, store, (OPS_JM, "operator"), GRANTS[1], *grants)
    # Why: sudo asks for the agent's or the target's password; any third account's is refused.
    assert decide(decider, {"credential": "web1-deploy"}).code == "credential.unsuitable"
    assert decide(decider, {"credential": "my-key"}).code == "credential.unsuitable"
    allowed = decide(decider, {"credential": "sudo-me"})
    assert allowed.allowed and allowed.credential is not None and allowed.credential.key == "sudo-me"
    assert "sudo password from credential sudo-me" in allowed.explain()


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"remote_host": "-oProxyCommand=x"}, "remote_host"),
        ({"remote_host": "web1", "credential": "a b"}, "credential"),
        ({"remote_host": "web1", "credential": "k", "sudo_user": "#0"}, "sudo_user"),
        ({"sudo_user": "liberty"}, "sudo_user"),
    ],
)
def test_bad_remote_fields_are_refused(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore, spec: dict[str, str], field: str
) -> None:
    decision = decide(decider_with(trust, journal, store, *GRANTS), spec)
    assert decision.code == "agent.job_invalid" and field in (decision.reason or "")


def test_remote_fields_are_covered_by_the_job_digest(
    trust: TrustStore, journal: StartedJournal, store: CredentialStore
) -> None:
    decider = decider_with(trust, journal, store, *GRANTS, (OPS_JM, "operator", "allow", "remote:web2"),
                           (OPS_JM, "operator", "allow", "credential:web2-deploy"))  # fmt: skip
    job = make_job({"remote_host": "web1", "credential": "web1-deploy"})
    token = mint(job)
    job["spec"]["remote_host"], job["spec"]["credential"] = "web2", "web2-deploy"
    assert decider.decide(job, token).code == "token.job_mismatch"
