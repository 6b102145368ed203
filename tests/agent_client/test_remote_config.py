"""``[remote_hosts.<name>]`` and ``[credentials]`` in the agent TOML: every mistake is one
``agent.config`` line naming the field; a host without a pinned key never loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_client.config import config_from_mapping
from agent_client.errors import AgentConfigInvalid
from agent_client.remote.hosts import parse_host_key

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl root@web1"
BASE: dict[str, Any] = {
    "agent": {"node_id": "n", "realm": "cellB", "sts_url": "https://sts.test"},
    "job_types": {"run": "operator"},
}


def load(tmp_path: Path, hosts: dict[str, Any]) -> Any:
    return config_from_mapping({**BASE, "remote_hosts": hosts}, tmp_path / "agent.toml", {})


def test_a_remote_host_with_its_pinned_key(tmp_path: Path) -> None:
    config = load(tmp_path, {"web1": {"address": "192.0.2.10", "host_key": ED25519, "sudo_users": ["liberty"]}})
    host = config.remote_hosts["web1"]
    assert (host.address, host.port, host.connect_timeout, host.sudo_users) == ("192.0.2.10", 22, 15, {"liberty"})
    assert host.host_key == parse_host_key(ED25519)
    assert host.host_key.fingerprint.startswith("SHA256:") and host.host_key.algorithms == ("ssh-ed25519",)


def test_rsa_pins_offer_sha2_signatures_only(tmp_path: Path) -> None:
    from sts.commands.inetd_sshd import keygen

    key = parse_host_key(keygen(tmp_path / "rsa_host", "rsa"))
    assert key.algorithms == ("rsa-sha2-512", "rsa-sha2-256")  # never SHA-1 "ssh-rsa" signatures


@pytest.mark.parametrize(
    ("host", "field", "problem"),
    [
        ({"address": "192.0.2.10"}, "remote_hosts.web1.host_key", "is required"),
        ({"address": "192.0.2.10", "host_key": "ssh-dss AAAAB3NzaC1kc3M="}, "host_key", "not one of"),
        ({"address": "192.0.2.10", "host_key": "ssh-ed25519 not-base64!"}, "host_key", "base64"),
        ({"address": "192.0.2.10", "host_key": "ssh-rsa " + ED25519.split()[1]}, "host_key", "not of type ssh-rsa"),
        ({"address": "-oProxyCommand=x", "host_key": ED25519}, "address", "host name or an IP"),
        ({"address": "192.0.2.10", "host_key": ED25519, "port": 0}, "port", "1 to 65535"),
        ({"address": "192.0.2.10", "host_key": ED25519, "sudo_users": ["#0"]}, "sudo_users", "not a valid"),
        ({"address": "192.0.2.10", "host_key": ED25519, "trust_on_first_use": True}, "trust_on_first_use", "unknown"),
    ],
)
def test_bad_remote_hosts_are_refused(tmp_path: Path, host: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(AgentConfigInvalid, match=problem) as caught:
        load(tmp_path, {"web1": host})
    assert field in caught.value.message


def test_bad_remote_host_name(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigInvalid, match="remote host name"):
        load(tmp_path, {"web 1": {"address": "192.0.2.10", "host_key": ED25519}})


def test_credentials_default_beside_the_node_key(tmp_path: Path) -> None:
    config = config_from_mapping(
        {**BASE, "agent": {**BASE["agent"], "key_file": "keys/node.key"}}, tmp_path / "a.toml", {}
    )
    assert config.credentials is not None
    assert config.credentials.key_file == tmp_path / "keys" / "credentials.key"
    assert config.credentials.store == tmp_path / "keys" / "credentials.enc"
    with pytest.raises(AgentConfigInvalid, match=r"credentials\.secret"):
        config_from_mapping({**BASE, "credentials": {"secret": "x"}}, tmp_path / "a.toml", {})
