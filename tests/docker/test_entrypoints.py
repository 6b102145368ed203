"""The images' entry points and make-secrets.sh, run as processes (no Docker engine here).

* docker/sts-entrypoint.sh turns NAME_FILE into NAME (and leaves jobsts's own JOBSTS_*_FILE
  paths alone); with a real slapd, the STS configuration's bind_password_env is satisfied from
  a file, which is how the compose stack passes the directory password.
* docker/agent-entrypoint.sh installs the configuration owned by the running account with mode
  0600, makes the key on first start only, and keeps it on every restart.
* docker/make-secrets.sh makes every secret the compose file names, mode 0600, never
  overwriting one, and gives the STS's files to uid 10001.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import jobsts, toml_table, write_private
from tests.ldap_harness import SlapdServer

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
IS_ROOT = os.geteuid() == 0


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("JOBSTS_")}
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '/usr/bin:/bin')}"
    environ.update(env)
    return subprocess.run(
        argv, capture_output=True, text=True, env=environ, stdin=subprocess.DEVNULL, timeout=120, check=False
    )


def environment_after(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


# --- sts-entrypoint.sh --------------------------------------------------------------------


def test_a_file_variable_becomes_the_variable(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("s3cret\n")
    done = run(
        ["sh", str(DOCKER / "sts-entrypoint.sh"), "env"],
        LDAP_PASSWORD_FILE=str(secret),
        JOBSTS_MASTER_KEY_FILE="/run/secrets/master_key",
        SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt",
    )
    assert done.returncode == 0, done.stderr
    after = environment_after(done)
    assert after["LDAP_PASSWORD"] == "s3cret"
    assert "LDAP_PASSWORD_FILE" not in after
    # jobsts reads its own *_FILE settings as paths: they pass through untouched.
    assert after["JOBSTS_MASTER_KEY_FILE"] == "/run/secrets/master_key"
    assert "JOBSTS_MASTER_KEY" not in after
    # Other programs' *_FILE settings are paths (OpenSSL's CA bundle here): untouched too.
    assert after["SSL_CERT_FILE"] == "/etc/ssl/certs/ca-certificates.crt" and "SSL_CERT" not in after


def test_both_a_variable_and_its_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-file")
    done = run(["sh", str(DOCKER / "sts-entrypoint.sh"), "env"], PGPASSWORD_FILE=str(secret), PGPASSWORD="inline")
    assert done.returncode == 2
    assert "both PGPASSWORD and PGPASSWORD_FILE are set" in done.stderr
    assert "from-file" not in done.stdout + done.stderr


def test_an_unreadable_file_is_refused_naming_it(tmp_path: Path) -> None:
    done = run(["sh", str(DOCKER / "sts-entrypoint.sh"), "env"], PGPASSWORD_FILE=str(tmp_path / "missing"))
    assert done.returncode == 2
    assert f"PGPASSWORD_FILE: cannot read {tmp_path / 'missing'}" in done.stderr


@pytest.mark.slapd
def test_the_sts_reads_its_directory_password_from_a_file(slapd: SlapdServer, tmp_path: Path) -> None:
    """As in compose: bind_password_env names JOBMGR_LDAP_PASSWORD, the container has only the _FILE.

    The STS reads ``<NAME>_FILE`` itself (realms/env_secrets.py); the entry point's copy to
    ``<NAME>`` must agree with it."""
    table = slapd.realm_table("jobmgr")
    password = table["registry"].pop("bind_password")
    table["registry"]["bind_password_env"] = "JOBMGR_LDAP_PASSWORD"
    config = tmp_path / "sts.toml"
    lines = toml_table("sts", {"base_url": "http://proxy:8080", "master_key_file": "master.key"})
    lines += toml_table("realms", {"name": "jobmgr"}, array=True) + toml_table("realms.registry", table["registry"])
    write_private(config, "\n".join(lines))
    write_private(tmp_path / "ldap_sts_password", f"{password}\n")
    command = ["jobsts", "access-id", "--config", str(config), "jobmgr", "john"]
    missing = run(command)
    assert missing.returncode == 2 and "JOBMGR_LDAP_PASSWORD" in missing.stderr
    native = run(command, JOBMGR_LDAP_PASSWORD_FILE=str(tmp_path / "ldap_sts_password"))
    assert native.returncode == 0, native.stderr
    assert native.stdout.splitlines()[0] == "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"
    done = run(
        ["sh", str(DOCKER / "sts-entrypoint.sh"), *command],
        JOBMGR_LDAP_PASSWORD_FILE=str(tmp_path / "ldap_sts_password"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "user:jobmgr/uid=john,ou=people,dc=jobmgr,dc=example"


# --- agent-entrypoint.sh ------------------------------------------------------------------


def test_the_agent_entry_point_makes_the_key_once_and_installs_the_configuration(tmp_path: Path) -> None:
    source = tmp_path / "source.toml"
    agent = {
        "node_id": "node1",
        "realm": "jobmgr",
        "sts_url": "http://proxy:8080",
        "key_file": "keys/node.key",
        "authz_table": "authz.sqlite",
        "executor": "self",
    }
    source.write_text("\n".join(toml_table("agent", agent) + toml_table("job_types", {"run": "operator"})))
    source.chmod(0o644)  # as a bind-mounted file from the host may be
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o700)
    jobsts("authz", "--table", str(etc / "authz.sqlite"), "import", "-", stdin="access_id,role,effect,scope\n")
    environment = {
        "JOBSTS_AGENT_CONFIG": str(etc / "agent.toml"),
        "JOBSTS_AGENT_CONFIG_SOURCE": str(source),
        "JOBSTS_AGENT_PUBLIC_KEY_COPY": str(tmp_path / "pub" / "node.pub.pem"),
    }
    first = run(["sh", str(DOCKER / "agent-entrypoint.sh"), "true"], **environment)
    assert first.returncode == 0, first.stderr
    assert "node node1: made a new key pair" in first.stderr
    installed = (etc / "agent.toml").stat()
    assert stat.S_IMODE(installed.st_mode) == 0o600 and installed.st_uid == os.geteuid()
    key = etc / "keys" / "node.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "pub" / "node.pub.pem").read_bytes() == (etc / "keys" / "node.pub.pem").read_bytes()
    assert sorted(p.name for p in (etc / "keys").iterdir()) == ["node.key", "node.pub.pem"]  # no scratch left
    made = key.read_bytes()

    again = run(["sh", str(DOCKER / "agent-entrypoint.sh"), "true"], **environment)  # a restart
    assert again.returncode == 0, again.stderr
    assert "made a new key pair" not in again.stderr and "published" not in again.stderr
    assert key.read_bytes() == made


def test_the_agent_entry_point_without_a_configuration_is_exit_2(tmp_path: Path) -> None:
    done = run(["sh", str(DOCKER / "agent-entrypoint.sh"), "true"], JOBSTS_AGENT_CONFIG=str(tmp_path / "none.toml"))
    assert done.returncode == 2
    assert f"no configuration at {tmp_path / 'none.toml'}" in done.stderr


# --- make-secrets.sh ----------------------------------------------------------------------


def test_make_secrets_makes_every_compose_secret_and_keeps_existing_ones(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    first = run(["sh", str(DOCKER / "make-secrets.sh"), str(directory)])
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert sorted(p.name for p in directory.iterdir()) == sorted(compose["secrets"])
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    key = (directory / "master_key").read_text().strip()
    assert len(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4))) == 32
    sts_files = ["master_key", "postgres_password", "ldap_sts_password"]
    if IS_ROOT:
        assert first.returncode == 0, first.stderr
        assert {(directory / name).stat().st_uid for name in sts_files} == {10001}
        assert (directory / "admin_password").stat().st_uid == 0
    else:
        assert first.returncode == 1
        assert "sudo chown 10001:10001" in first.stderr
    before = {path.name: path.read_bytes() for path in directory.iterdir()}
    again = run(["sh", str(DOCKER / "make-secrets.sh"), str(directory)])
    assert again.returncode == first.returncode
    assert {path.name: path.read_bytes() for path in directory.iterdir()} == before
    assert again.stdout.count("kept ") == len(before)
