"""The agent's encrypted credential store and its CLI (``jobsts agent credentials ...``).

Real files, real modes, real AES-GCM; the OS-account tests run as root with real accounts.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent_client.commands.agent import agent as agent_cli
from agent_client.config import load_agent_config
from agent_client.credentials.errors import CredentialForeign, CredentialMissing, CredentialStoreInvalid
from agent_client.credentials.store import CredentialsConfig, CredentialStore
from agent_client.errors import UnsafeFileMode
from agent_client.file_modes import require_safe
from realms.errors import JobstsError
from sts.commands.inetd_sshd import keygen
from tests.os_accounts import account_tool

IS_ROOT = os.geteuid() == 0
CANARY = f"canary-{secrets.token_hex(8)}"

CONFIG = """
[agent]
node_id = "node1"
realm = "cellB"
sts_url = "https://sts.test"

[job_types]
run = "operator"
"""


@pytest.fixture
def agent_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "agent"
    directory.mkdir(mode=0o700)
    (directory / "agent.toml").write_text(CONFIG)
    (directory / "agent.toml").chmod(0o600)
    return directory


def cli(directory: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(agent_cli, ["credentials", *args, "--config", str(directory / "agent.toml")],
                                input=stdin)  # fmt: skip
    text = result.output + (
        f"{result.exception}" if result.exception and not isinstance(result.exception, SystemExit) else ""
    )
    return result.exit_code, text


def store_of(directory: Path) -> CredentialStore:
    config = load_agent_config(directory / "agent.toml", environ={})
    assert config.credentials is not None
    return CredentialStore(config.credentials)


def test_add_list_remove_and_the_secret_is_encrypted_at_rest(agent_dir: Path) -> None:
    code, out = cli(agent_dir, "add", "web1-deploy", "--user", "deploy", "--password-stdin", stdin=f"{CANARY}\n")
    assert code == 0, out
    assert "added credential web1-deploy" in out and "--scope credential:web1-deploy" in out
    key_file, store_file = agent_dir / "credentials.key", agent_dir / "credentials.enc"
    # Beside the node key, private, and the password is nowhere in the clear.
    for path in (key_file, store_file):
        assert path.stat().st_mode & 0o777 == 0o600
    for path in agent_dir.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    envelope = json.loads(store_file.read_text())
    assert envelope["format"] == "jobsts-credentials-v1" and set(envelope) == {"format", "nonce", "sealed"}
    code, out = cli(agent_dir, "list")
    assert code == 0 and "web1-deploy\tuser=deploy\tpassword\tadded_by_uid=" in out and CANARY not in out
    secret = store_of(agent_dir).secret("web1-deploy")
    assert (secret.user, secret.password) == ("deploy", CANARY)
    assert CANARY not in repr(secret)
    assert cli(agent_dir, "remove", "web1-deploy")[0] == 0
    assert cli(agent_dir, "remove", "web1-deploy")[0] == 1
    with pytest.raises(CredentialMissing, match="credentials add web1-deploy"):
        store_of(agent_dir).secret("web1-deploy")


def test_add_refuses_to_overwrite_without_replace(agent_dir: Path) -> None:
    assert cli(agent_dir, "add", "k", "--user", "a", "--password-stdin", stdin="one\n")[0] == 0
    code, out = cli(agent_dir, "add", "k", "--user", "b", "--password-stdin", stdin="two\n")
    assert code != 0 and "--replace" in out
    assert cli(agent_dir, "add", "k", "--user", "b", "--password-stdin", "--replace", stdin="two\n")[0] == 0
    assert store_of(agent_dir).secret("k").password == "two"


def test_ssh_key_with_passphrase(agent_dir: Path, tmp_path: Path) -> None:
    key = tmp_path / "id_ecdsa"
    keygen(key, "ecdsa", "pass phrase")
    code, out = cli(agent_dir, "add", "k", "--user", "deploy", "--ssh-key", str(key), "--passphrase-stdin",
                    stdin="wrong\n")  # fmt: skip
    assert code != 0 and "passphrase is wrong" in out
    code, out = cli(agent_dir, "add", "k", "--user", "deploy", "--ssh-key", str(key))
    assert code != 0 and "--passphrase-stdin" in out
    code, out = cli(agent_dir, "add", "k", "--user", "deploy", "--ssh-key", str(key), "--passphrase-stdin",
                    stdin="pass phrase\n")  # fmt: skip
    assert code == 0, out
    secret = store_of(agent_dir).secret("k")
    assert secret.private_key == key.read_text() and secret.passphrase == "pass phrase" and secret.password is None
    assert "ssh key with passphrase" in cli(agent_dir, "list")[1]


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["add", "k", "--user", "deploy"], "", "exactly one of"),
        (["add", "k", "--user", "deploy", "--password-stdin"], "", "no password"),
        (["add", "k", "--user", "DOMAIN\\deploy", "--password-stdin"], "x\n", "not a login name"),
        (["add", "-k", "--user", "deploy", "--password-stdin"], "x\n", ""),
        (["add", "a b", "--user", "deploy", "--password-stdin"], "x\n", "not a valid name"),
    ],
)
def test_add_refuses_bad_input(agent_dir: Path, args: list[str], stdin: str, expected: str) -> None:
    code, out = cli(agent_dir, *args, stdin=stdin)
    assert code != 0 and expected in out
    assert not (agent_dir / "credentials.enc").exists()


def test_a_damaged_store_or_another_key_does_not_decrypt(agent_dir: Path) -> None:
    store = store_of(agent_dir)
    store.put("k", "deploy", password="pw")
    data = json.loads((agent_dir / "credentials.enc").read_text())
    data["sealed"] = data["sealed"][:-8] + "AAAAAAA="
    (agent_dir / "credentials.enc").write_text(json.dumps(data))
    with pytest.raises(CredentialStoreInvalid, match="does not decrypt"):
        store.secret("k")
    other = CredentialStore(CredentialsConfig(agent_dir / "other.enc", agent_dir / "other.key"))
    other.put("x", "deploy", password="pw")
    os.replace(agent_dir / "other.enc", agent_dir / "credentials.enc")
    with pytest.raises(CredentialStoreInvalid, match="does not decrypt"):
        store.secret("x")


def test_the_store_key_is_under_the_file_mode_checks(agent_dir: Path) -> None:
    store = store_of(agent_dir)
    store.put("k", "deploy", password="pw")
    (agent_dir / "credentials.key").chmod(0o640)
    with pytest.raises(CredentialStoreInvalid, match="readable by group or others"):
        store.secret("k")
    config = load_agent_config(agent_dir / "agent.toml", environ={})
    assert agent_dir / "credentials.key" in config.protected_files()
    with pytest.raises(UnsafeFileMode, match=r"credentials\.key"):
        require_safe(config.credential_files(), private=config.credential_files())
    (agent_dir / "credentials.key").chmod(0o600)
    (agent_dir / "credentials.key").rename(agent_dir / "real.key")
    (agent_dir / "credentials.key").symlink_to(agent_dir / "real.key")
    with pytest.raises(CredentialStoreInvalid, match="symlink"):
        store.secret("k")


def test_store_paths_can_be_configured(agent_dir: Path) -> None:
    (agent_dir / "agent.toml").write_text(
        CONFIG + '\n[credentials]\nkey_file = "keys/store.key"\nstore = "data/store.enc"\n'
    )
    config = load_agent_config(agent_dir / "agent.toml", environ={})
    assert config.credentials == CredentialsConfig(agent_dir / "data/store.enc", agent_dir / "keys/store.key")


# --- another OS account (root only) ----------------------------------------------------------


@pytest.fixture
def service_account() -> Iterator[str]:
    name = f"jstc{secrets.token_hex(4)}"
    account_tool(["useradd", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", name])
    try:
        yield name
    finally:
        account_tool(["userdel", "-f", name], check=False)


def as_account(name: str, action: Callable[[], str]) -> str:
    """Run ``action`` in a forked child that became ``name`` for good; returns what it returned."""
    entry = pwd.getpwnam(name)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the account, act, report, exit without cleanup handlers
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
            os.write(write_fd, action().encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as handle:
        out = handle.read().decode()
    os.waitpid(pid, 0)
    return out


@pytest.mark.root
def test_a_key_added_by_another_account_is_refused(service_account: str) -> None:
    if not IS_ROOT:
        pytest.skip("needs root to create OS accounts")
    agent_dir = Path(tempfile.mkdtemp(prefix="jstc-", dir="/tmp"))
    try:
        _foreign_key_is_refused(agent_dir, service_account)
    finally:
        shutil.rmtree(agent_dir, ignore_errors=True)


def _foreign_key_is_refused(agent_dir: Path, service_account: str) -> None:
    (agent_dir / "agent.toml").write_text(CONFIG)
    # root adds the key, then hands the store to the agent's service account...
    store_of(agent_dir).put("k", "deploy", password=CANARY)
    entry = pwd.getpwnam(service_account)
    for path in (agent_dir, agent_dir / "agent.toml", agent_dir / "credentials.key", agent_dir / "credentials.enc"):
        os.chown(path, entry.pw_uid, entry.pw_gid)

    # ...and the agent, running as that account, refuses it (JS7: added by a different account).
    def use() -> str:
        try:
            store_of(agent_dir).secret("k")
        except JobstsError as exc:
            return f"{exc.code} {exc.message}"
        return "opened"

    said = as_account(service_account, use)
    assert said.startswith("credential.foreign "), said
    assert "added by uid 0" in said and f"uid {entry.pw_uid}" in said and CANARY not in said
    # And root cannot write into the service account's store (it would take the files away from it).
    with pytest.raises(CredentialForeign, match="run `jobsts agent credentials` as the agent's account"):
        store_of(agent_dir).put("k2", "deploy", password="x")
