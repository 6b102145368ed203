"""``jobsts agent credentials add|list|remove``: the agent's credential store from the shell.

Run these as the agent's own OS account: a key is usable only by the account that added it
(as with the Windows Credential Manager behind JS7's user switching). Secrets are read from
standard input (``--password-stdin``, ``--passphrase-stdin``), never from the command line,
where ``ps`` and shell history would show them.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from agent_client.config import load_agent_config
from agent_client.credentials.errors import CredentialBadInput, CredentialStoreInvalid
from agent_client.credentials.store import CredentialStore, check_key_name

# A login name on the remote host: no "@", "\" or spaces (JS7 refuses DOMAIN\user the same way),
# never an option ("-..."), never a number only.
LOGIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,63}")
MAX_SECRET_BYTES = 64 * 1024

_config_option = click.option(
    "--config", "config_path", required=True, type=click.Path(path_type=Path), help="The agent TOML."
)


def _store(config_path: Path) -> CredentialStore:
    config = load_agent_config(config_path)
    if config.credentials is None:  # pragma: no cover - the loader always fills it in
        raise CredentialStoreInvalid("no [credentials] store configured", field="credentials")
    return CredentialStore(config.credentials)


def _read_line(what: str) -> str:
    line = sys.stdin.readline(MAX_SECRET_BYTES)
    value = line[:-1] if line.endswith("\n") else line
    if not value:
        raise CredentialBadInput(f"no {what} on standard input")
    return value


def _check_private_key(path: Path, passphrase: str | None) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CredentialBadInput(f"cannot read {path}: {exc.strerror}") from None
    password = passphrase.encode("utf-8") if passphrase is not None else None
    try:
        try:
            serialization.load_ssh_private_key(data, password=password)
        except ValueError:
            serialization.load_pem_private_key(data, password=password)
    except TypeError:
        raise CredentialBadInput(f"{path} is encrypted: give its passphrase with --passphrase-stdin") from None
    except ValueError:
        # Why: refused at add time, so a wrong passphrase is never found first by a running job.
        raise CredentialBadInput(f"{path}: the passphrase is wrong, or the file is not a private key") from None
    return data.decode("utf-8")


@click.group()
def credentials() -> None:
    """The agent's credential store: secrets held under a credential key (jobs name only the key)."""


@credentials.command()
@click.argument("key")
@_config_option
@click.option("--user", required=True, help="The login name the secret belongs to (on the remote host).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@click.option(
    "--ssh-key", type=click.Path(path_type=Path, dir_okay=False), help="A private key file (its content is stored)."
)
@click.option("--passphrase-stdin", is_flag=True, help="Read the private key's passphrase from stdin.")
@click.option("--replace", is_flag=True, help="Overwrite an existing key.")
def add(
    key: str, config_path: Path, user: str, password_stdin: bool, ssh_key: Path | None, passphrase_stdin: bool,
    replace: bool,
) -> None:  # fmt: skip
    """Store a password (--password-stdin) or a private key (--ssh-key FILE) for USER under KEY."""
    check_key_name(key)
    if LOGIN_NAME.fullmatch(user) is None:
        raise CredentialBadInput(f"user {user[:40]!r} is not a login name (expected [A-Za-z_][A-Za-z0-9._-]{{0,63}})")
    if password_stdin == (ssh_key is not None):
        raise click.UsageError("give exactly one of --password-stdin and --ssh-key FILE")
    if passphrase_stdin and ssh_key is None:
        raise click.UsageError("--passphrase-stdin goes with --ssh-key FILE")
    store = _store(config_path)
    if ssh_key is not None:
        passphrase = _read_line("passphrase") if passphrase_stdin else None
        private_key = _check_private_key(ssh_key, passphrase)
        existed = store.put(key, user, private_key=private_key, passphrase=passphrase, replace=replace)
    else:
        existed = store.put(key, user, password=_read_line("password"), replace=replace)
    verb = "replaced" if existed else "added"
    click.echo(f"{verb} credential {key} for user {user} (usable by uid {os.geteuid()} only)")
    click.echo(
        f"grant its use: jobsts authz --table sqlite:///<authz table> grant ACCESS_ID ROLE --scope credential:{key}"
    )


@credentials.command(name="list")
@_config_option
def list_command(config_path: Path) -> None:
    """Keys, users, kinds and owners; never a secret."""
    infos = _store(config_path).infos()
    if not infos:
        click.echo("no credentials")
    for info in infos.values():
        added = datetime.datetime.fromtimestamp(info.added_at, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kind = info.kind.replace("_", " ") + (" with passphrase" if info.has_passphrase else "")
        click.echo(f"{info.key}\tuser={info.user}\t{kind}\tadded_by_uid={info.added_by}\tadded={added}")


@credentials.command()
@click.argument("key")
@_config_option
@click.pass_context
def remove(ctx: click.Context, key: str, config_path: Path) -> None:
    """Remove KEY from the store."""
    if _store(config_path).remove(check_key_name(key)):
        click.echo(f"removed credential {key}")
    else:
        click.echo(f"no credential {key}")
        ctx.exit(1)
