"""docker/: no engine runs here, so check what can be checked by reading the files.

Every referenced file exists, ports and URLs agree between services, the STS and agent
configurations validate and name services that exist, images are pinned, the STS image
runs unprivileged, and no secret is committed.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sts.config import sts_config_from_mapping

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
PINNED_TAG = re.compile(r"^[\w./-]+:\d+(\.\d+)+[\w.+-]*(@sha256:[0-9a-f]{64})?$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


def dockerfiles() -> list[Path]:
    return sorted(DOCKER.rglob("Dockerfile"))


def _from_images(dockerfile: Path) -> list[str]:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I))
    images = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M | re.I)
    return [image for image in images if image not in stages]


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_base_images_are_pinned(dockerfile: Path) -> None:
    images = _from_images(dockerfile)
    assert images, "no FROM line"
    assert [image for image in images if not PINNED_TAG.match(image)] == []


def test_compose_images_are_pinned(compose: dict[str, Any]) -> None:
    unpinned = [
        f"{name}: {service['image']}"
        for name, service in compose["services"].items()
        if "build" not in service and not PINNED_TAG.match(service["image"])
    ]
    assert unpinned == []


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(ROOT)))
def test_copied_files_exist(dockerfile: Path) -> None:
    # Build context is the repository root (compose: context "..").
    sources = []
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile.read_text(), re.M):
        sources += line.split()[:-1]
    assert sources
    assert [src for src in sources if not (ROOT / src).exists()] == []


def test_sts_image_runs_unprivileged() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    sts_stage = text.split("AS sts", 1)[1].split("\nFROM ", 1)[0]
    users = re.findall(r"^USER\s+(\S+)", sts_stage, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_mounted_files_exist_and_secrets_are_not_committed(compose: dict[str, Any]) -> None:
    missing = []
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                if not (DOCKER / source).exists():
                    missing.append(f"{name}: {source}")
    assert missing == []
    for secret in compose["secrets"].values():
        path = (DOCKER / secret["file"]).resolve()
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT, capture_output=True, check=False
        )
        assert tracked.returncode != 0, f"{path} is committed"
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not ignored by git"


def test_dependencies_name_existing_services(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    dangling = [
        f"{name} -> {dep}"
        for name, service in compose["services"].items()
        for dep in service.get("depends_on", {})
        if dep not in services
    ]
    assert dangling == []


def _sts_config() -> Any:
    data = tomllib.loads((DOCKER / "config/sts.toml").read_text())
    environ = {"JOBSTS_MASTER_KEY_FILE": "/run/secrets/master_key",
               "JOBMGR_LDAP_PASSWORD": "x", "CELLB_LDAP_PASSWORD": "x"}
    return data, environ


def test_sts_configuration_matches_the_stack(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    data, environ = _sts_config()
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    config = sts_config_from_mapping(data, DOCKER / "config", environ)
    services = compose["services"]
    assert urlsplit(config.database_url).hostname in services
    for realm in data["realms"]:
        assert urlsplit(realm["registry"]["url"]).hostname in services
        assert realm["registry"]["bind_password_env"] in services["sts1"]["environment"]
    # The published port of the proxy is the port of the configured base URL.
    published = services["proxy"]["ports"][0].split(":")[0]
    assert str(urlsplit(config.base_url).port) == published
    # X-Forwarded-For is trusted from the proxy's fixed address only.
    proxy_address = services["proxy"]["networks"]["jobsts"]["ipv4_address"]
    assert [str(n) for n in config.trusted_proxies] == [f"{proxy_address}/32"]
    # Every ldap service seeds a realm that the STS configuration names.
    realm_names = {r["name"] for r in data["realms"]}
    assert {s["environment"]["REALM"] for n, s in services.items() if n.startswith("ldap-")} == realm_names


def test_proxy_backends_are_the_sts_replicas(compose: dict[str, Any]) -> None:
    config = (DOCKER / "proxy/haproxy.cfg").read_text()
    backends = dict(re.findall(r"^\s*server\s+\S+\s+(\S+):(\d+)", config, re.M))
    assert set(backends) == {"sts1", "sts2"} <= set(compose["services"])
    sts_port = re.search(r"--port\", \"(\d+)\"", (DOCKER / "Dockerfile").read_text())
    assert sts_port is not None
    assert set(backends.values()) == {sts_port.group(1)}
    bind = re.search(r"^\s*bind\s+:(\d+)", config, re.M)
    assert bind is not None and compose["services"]["proxy"]["ports"][0].endswith(f":{bind.group(1)}")


@pytest.mark.parametrize("node", ["agent-node1.toml", "agent-node2.toml"])
def test_agent_configurations_point_at_the_proxy(node: str, compose: dict[str, Any]) -> None:
    data = tomllib.loads((DOCKER / "config" / node).read_text())
    url = urlsplit(data["agent"]["sts_url"])
    assert url.hostname == "proxy"
    assert f":{url.port}" in compose["services"]["proxy"]["ports"][0]
    sts_realms = {r["name"] for r in tomllib.loads((DOCKER / "config/sts.toml").read_text())["realms"]}
    assert {data["agent"]["realm"], *data["agent"]["trusted_realms"]} <= sts_realms


@pytest.mark.parametrize("node", ["agent-node1.toml", "agent-node2.toml"])
def test_agent_configurations_validate(node: str) -> None:
    from agent_client.config import config_from_mapping

    data = tomllib.loads((DOCKER / "config" / node).read_text())
    config = config_from_mapping(data, DOCKER / "config" / node, environ={})
    assert config.node_id in node
