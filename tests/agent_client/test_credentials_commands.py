"""`jobsts agent check` and `explain` see the credential store as the running agent does."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from agent_client.commands.agent import agent as agent_cli
from agent_client.config import load_agent_config
from agent_client.credentials.store import CredentialStore
from authz_tables.entries import parse_scope
from authz_tables.roles import Role
from authz_tables.store import AuthzTable
from realms.identity.access_id import AccessId
from tests.agent_client.conftest import OPS_JM, make_job
from tests.agent_client.fake_sts import FakeState
from tests.agent_client.test_loop import lease_for, write_agent_dir


def _host_key() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def _remote_agent(tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey) -> Path:
    path = write_agent_dir(tmp_path / "agent", fake.base_url, node_key)
    with path.open("a") as config:
        config.write(f'\n[remote_hosts.web1]\naddress = "127.0.0.1"\nport = 22\nhost_key = "{_host_key()}"\n')
    loaded = load_agent_config(path, environ={})
    assert loaded.credentials is not None
    CredentialStore(loaded.credentials).put("k", "deploy", password="pw")
    with AuthzTable(f"sqlite:///{tmp_path / 'agent' / 'authz.sqlite'}") as table:
        table.grant(AccessId.parse(OPS_JM), Role.OPERATOR, parse_scope("credential:k"), changed_by="local:test")
    return path


def test_explain_uses_the_credential_store(
    tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey
) -> None:
    path = _remote_agent(tmp_path, fake, node_key)
    lease = lease_for(fake, make_job({"argv": ["/bin/true"], "remote_host": "web1", "credential": "k"}))
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(lease))
    result = CliRunner().invoke(agent_cli, ["explain", "--config", str(path), "--job", str(job_file)])
    assert result.exit_code == 0, result.output
    assert "verdict: run on remote host web1 as deploy@web1 over SSH" in result.output
    assert fake.started == []


def test_check_lists_loose_credential_files(
    tmp_path: Path, fake: FakeState, node_key: ec.EllipticCurvePrivateKey
) -> None:
    path = _remote_agent(tmp_path, fake, node_key)
    ok = CliRunner().invoke(agent_cli, ["check", "--config", str(path)])
    assert ok.exit_code == 0, ok.output
    for name in ("credentials.key", "credentials.enc"):
        (tmp_path / "agent" / name).chmod(0o640)
        bad = CliRunner().invoke(agent_cli, ["check", "--config", str(path)])
        assert bad.exit_code == 1 and name in bad.output, bad.output
        (tmp_path / "agent" / name).chmod(0o600)
