"""The SSH executor: run a job on a remote host as the credential's user (RFC 4254 §6.5 "exec").

Connect to the pinned host (``pinning``), log in with the credential's password or private
key, optionally sudo to a substitute user, and run the job under the wrapper of
``remote.command``. Output is kept as bounded tails like a local job's; the exit status is
the job's. On timeout or cancel the agent asks the wrapper to SIGTERM the job's remote
process group, then SIGKILL after ``kill_grace``; closing the channel kills it as well.

Library: paramiko (synchronous, one transport thread), because the agent's executors are
synchronous and poll with a cancel event; a channel's ``fileno()`` fits that loop directly.
"""

from __future__ import annotations

import io
import logging
import select
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agent_client.config import Limits
from agent_client.credentials.errors import CredentialUnsuitable, CredentialWrongPassword
from agent_client.credentials.store import Secret
from agent_client.errors import ExecCwdRefused
from agent_client.executors.base import DRAIN_SECONDS, ExecResult
from agent_client.executors.environment import is_denied
from agent_client.remote.command import CWD_FAILED_EXIT, PGID_MARKER, SUDO_PROMPT, remote_command
from agent_client.remote.errors import RemoteAuthFailed, RemoteError, RemoteSudoFailed, RemoteUnreachable
from agent_client.remote.hosts import RemoteHost
from agent_client.remote.pinning import check_host_key, no_pinned_type, offer_pinned_algorithms
from realms.errors import JobstsError
from realms.wire.spec import JobSpec

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
MAX_HEADER_BYTES = 64 * 1024
KILL_WAIT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RemoteTarget:
    """Where and as whom a remote job runs: host, the opened credential, an optional sudo user."""

    host: RemoteHost
    secret: Secret
    sudo_user: str | None = None

    def describe(self) -> str:
        who = f"{self.secret.user}@{self.host.name}"
        return who + (f" then sudo to {self.sudo_user}" if self.sudo_user else "")


def load_private_key(secret: Secret) -> paramiko.PKey:
    """The credential's private key as paramiko needs it; a wrong passphrase says so."""
    assert secret.private_key is not None
    data = secret.private_key.encode("utf-8")
    password = secret.passphrase.encode("utf-8") if secret.passphrase is not None else None
    loaded: object
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=password)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError):
        raise CredentialWrongPassword(
            f"the passphrase stored with credential {secret.key!r} does not open its private key "
            "(wrong passphrase, or none stored for an encrypted key)",
            key=secret.key,
        ) from None
    classes: list[tuple[type, type[paramiko.PKey]]] = [
        (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
        (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey),
        (rsa.RSAPrivateKey, paramiko.RSAKey),
    ]
    for kind, key_class in classes:
        if isinstance(loaded, kind):
            return key_class.from_private_key(io.StringIO(secret.private_key), password=secret.passphrase)
    raise CredentialUnsuitable(f"credential {secret.key!r} holds an unsupported key type", key=secret.key)


def connect(host: RemoteHost, secret: Secret) -> paramiko.Transport:
    """An authenticated transport to ``host``: pinned host key first, then the credential."""
    try:
        sock = socket.create_connection((host.address, host.port), timeout=host.connect_timeout)
    except OSError as exc:
        raise RemoteUnreachable(
            f"remote host {host.name} ({host.address}:{host.port}) cannot be reached: {exc.strerror or exc}",
            host=host.name,
        ) from None
    transport = paramiko.Transport(sock)
    try:
        offer_pinned_algorithms(transport, host)
        try:
            transport.start_client(timeout=host.connect_timeout)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # paramiko's IncompatiblePeer "(no acceptable host key)": no key of the pinned type.
            if "host key" in str(exc):
                raise no_pinned_type(host, str(exc)) from None
            raise RemoteUnreachable(f"remote host {host.name}: SSH handshake failed: {exc}", host=host.name) from None
        check_host_key(transport, host)
        _authenticate(transport, host, secret)
    except BaseException:
        transport.close()
        raise
    return transport


def _authenticate(transport: paramiko.Transport, host: RemoteHost, secret: Secret) -> None:
    user = secret.user
    try:
        if secret.private_key is not None:
            remaining = transport.auth_publickey(user, load_private_key(secret))
        elif secret.password is not None:
            # fallback=False: never retry the password through keyboard-interactive prompts.
            remaining = transport.auth_password(user, secret.password, fallback=False)
        else:
            raise CredentialUnsuitable(f"credential {secret.key!r} has neither a password nor a key", key=secret.key)
    except paramiko.BadAuthenticationType as exc:
        raise RemoteAuthFailed(
            f"remote host {host.name} does not accept this login method for {user} "
            f"(it allows: {', '.join(exc.allowed_types) or 'none'})",
            host=host.name,
        ) from None
    except paramiko.AuthenticationException:
        if secret.private_key is None:
            # JS7's WINDOWS-1326, in jobsts words.
            raise CredentialWrongPassword(
                f"remote host {host.name} refused the login of {user} with the password of credential "
                f"{secret.key!r}: the user name or password is incorrect; update it with "
                f"`jobsts agent credentials add {secret.key} --replace --user {user} --password-stdin`",
                key=secret.key,
                host=host.name,
            ) from None
        raise RemoteAuthFailed(
            f"remote host {host.name} refused the key of credential {secret.key!r} for {user} "
            f"(is its public key in ~{user}/.ssh/authorized_keys?)",
            host=host.name,
        ) from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise RemoteUnreachable(f"remote host {host.name}: connection lost while logging in: {exc}") from None
    if remaining:
        raise RemoteAuthFailed(
            f"remote host {host.name} wants more authentication for {user} ({', '.join(remaining)})", host=host.name
        )


class _Streams:
    """Bounded tails of stdout and stderr, and the stderr header before the job started."""

    def __init__(self, output_bytes: int) -> None:
        self.limit = output_bytes
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.header = bytearray()
        self.started = False
        self.pgid: int | None = None
        self.prompts = 0

    def _keep(self, tail: bytearray, chunk: bytes) -> None:
        tail += chunk
        # Why: a job must not be able to exhaust the agent's memory with output.
        if len(tail) > self.limit:
            del tail[: len(tail) - self.limit]

    def out(self, chunk: bytes) -> None:
        self._keep(self.stdout, chunk)

    def err(self, chunk: bytes) -> None:
        if self.started:
            self._keep(self.stderr, chunk)
            return
        self.header += chunk
        self.prompts += self.header.count(SUDO_PROMPT)
        self.header = self.header.replace(SUDO_PROMPT, b"")
        found = PGID_MARKER.search(self.header)
        if found is not None:
            self.started, self.pgid = True, int(found.group(1))
            rest = bytes(self.header[found.end() :])
            self.header = self.header[: found.start()]
            self._keep(self.stderr, rest)

    def text(self, data: bytearray) -> str:
        return bytes(data).decode("utf-8", "replace")


def _pump(channel: paramiko.Channel, streams: _Streams) -> None:
    while channel.recv_ready():
        streams.out(channel.recv(65536))
    while channel.recv_stderr_ready():
        streams.err(channel.recv_stderr(65536))


def _finished(channel: paramiko.Channel, exited_at: float | None) -> bool:
    if exited_at is None:
        return False
    drained = channel.eof_received and not channel.recv_ready() and not channel.recv_stderr_ready()
    return drained or time.monotonic() - exited_at > DRAIN_SECONDS


def _kill(channel: paramiko.Channel, streams: _Streams, grace: float) -> None:
    """SIGTERM the remote process group, SIGKILL after ``grace``; each as a line to the wrapper."""
    for line, wait in ((b"TERM\n", grace), (b"KILL\n", KILL_WAIT_SECONDS)):
        try:
            channel.sendall(line)
        except (OSError, paramiko.SSHException):
            return  # the channel is gone; the wrapper's watcher saw end of input and killed the group
        until = time.monotonic() + wait
        while time.monotonic() < until and not channel.exit_status_ready():
            select.select([channel], [], [], POLL_SECONDS)
            _pump(channel, streams)
        if channel.exit_status_ready():
            return


def _setup_failure(target: RemoteTarget, streams: _Streams, status: int | None) -> JobstsError:
    """The wrapper exited before starting the job: sudo, the directory, or the shell said why."""
    said = streams.text(streams.header).strip()[-500:]
    if status == CWD_FAILED_EXIT and "cannot change directory" in said:
        return ExecCwdRefused(f"{target.describe()}: {said.removeprefix('jobsts: ')}")
    if target.sudo_user is not None and (streams.prompts or "sudo" in said):
        if streams.prompts > 1:
            return CredentialWrongPassword(
                f"sudo on {target.host.name} refused the password of credential {target.secret.key!r} "
                f"for {target.secret.user}: the password is incorrect",
                key=target.secret.key,
            )
        return RemoteSudoFailed(
            f"sudo on {target.host.name} did not switch {target.secret.user} to {target.sudo_user}: "
            f"{said or f'exit {status}'}",
            host=target.host.name,
        )
    return RemoteError(f"the job did not start on {target.host.name}: exit {status}: {said}", host=target.host.name)


def run_remote_job(
    target: RemoteTarget,
    spec: JobSpec,
    limits: Limits,
    cancel: threading.Event | None = None,
    on_tick: Callable[[], None] | None = None,
) -> ExecResult:
    """Run ``spec`` on ``target``; every failure is an ``ExecResult`` with a code, never an exception."""
    env: Mapping[str, str] = {k: v for k, v in spec.env.items() if not is_denied(k)}
    dropped = sorted(k for k in spec.env if is_denied(k))
    timeout = min(spec.timeout, limits.max_timeout)
    secret = target.secret
    sudo_password = target.sudo_user is not None and secret.password is not None
    command = remote_command(spec.argv, env, spec.cwd, sudo_user=target.sudo_user, sudo_password=sudo_password)
    try:
        transport = connect(target.host, secret)
    except JobstsError as exc:
        return ExecResult(None, "", "", exc.code, exc.message, dropped)
    streams = _Streams(limits.output_bytes)
    code: str | None = None
    try:
        try:
            channel = transport.open_session(timeout=target.host.connect_timeout)
            channel.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            error = RemoteUnreachable(f"remote host {target.host.name}: cannot start a session: {exc}")
            return ExecResult(None, "", "", error.code, error.message, dropped)
        deadline = time.monotonic() + timeout
        exited_at: float | None = None
        answered = 0
        while not _finished(channel, exited_at):
            if on_tick is not None:
                on_tick()
            if cancel is not None and cancel.is_set():
                code = "exec.cancelled"
                break
            if time.monotonic() >= deadline:
                code = "exec.timeout"
                break
            select.select([channel], [], [], POLL_SECONDS)
            _pump(channel, streams)
            if not streams.started and streams.prompts > answered:
                if streams.prompts > 1 or not sudo_password:
                    break  # a second prompt: the password was wrong (reported below)
                # Why: the password goes to sudo's prompt on the channel, never on a command line.
                channel.sendall((secret.password or "").encode("utf-8") + b"\n")
                answered = streams.prompts
            if len(streams.header) > MAX_HEADER_BYTES:
                break
            if exited_at is None and channel.exit_status_ready():
                exited_at = time.monotonic()
        if code is not None:
            _kill(channel, streams, limits.kill_grace)
        status = channel.recv_exit_status() if channel.exit_status_ready() else None
    finally:
        transport.close()
    out, err = streams.text(streams.stdout), streams.text(streams.stderr)
    where = f"its process group on {target.host.name} was killed"
    if code == "exec.timeout":
        return ExecResult(None, out, err, code, f"job ran longer than {timeout:g}s; {where}", dropped)
    if code == "exec.cancelled":
        return ExecResult(None, out, err, code, f"job was cancelled; {where}", dropped)
    if not streams.started:
        failure = _setup_failure(target, streams, status)
        return ExecResult(None, out, err, failure.code, failure.message, dropped)
    return ExecResult(status, out, err, None, None, dropped)
