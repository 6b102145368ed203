"""A real OpenLDAP ``slapd`` for the test session (pytest plugin, loaded by tests/conftest.py).

How other tests use it:

* ``slapd`` (session fixture) starts ``/usr/sbin/slapd`` as the current user on loopback
  ports (see "Ports" below), with one mdb database per seed realm (``jobmgr``, ``cellB``, ``cellC``), the
  memberof, refint and ppolicy overlays, and the entries of ``tests/ldap/<realm>.ldif`` (the
  very files the ``ldif`` backend reads). Use ``slapd.url``, ``slapd.base_dn("jobmgr")`` and
  ``slapd.realm_table("jobmgr", group_mode="memberOf")``: a dict ready to be one
  ``[[realms]]`` entry (``realms.config.load_realms([table], base_dir)``), or
  ``ldif_realm_table("jobmgr")`` for the same realm on the ``ldif`` backend. Every seed user's
  password is ``"<uid>-password"``; alice (jobmgr) is locked. TLS: ``slapd.ldaps_url`` and
  StartTLS on ``slapd.url`` present a certificate for IP 127.0.0.1 signed by ``slapd.ca_file``
  (``realm_table(..., url=slapd.ldaps_url, ca_file=str(slapd.ca_file))``).
* ``ldap_seed_files``: realm name -> Path of its seed LDIF.
* ``down_ldap_url``: an ``ldap://`` URL where nothing listens (connection refused); the port is
  held for the test, so nothing else can start listening there.
* ``slow_ldap_url``: an ``ldap://`` URL whose socket accepts and never answers.
* ``starttls_refusing_server``: a fake directory that refuses StartTLS and records every byte
  it receives (``.url``, ``.received``), to prove no bind follows a failed StartTLS;
  ``busy_directory``: one that answers every bind with "busy".

Ports: slapd cannot inherit a listening socket, so it cannot be handed a port the test holds.
Instead ``launch()`` asks the kernel for candidate ports and starts slapd on them; if another
process took one in between, slapd exits with errno 98 (EADDRINUSE) and ``launch()`` tries
fresh ones. Success is proven, not assumed: slapd prints "slapd starting" only after it has
bound every listener, so once it does, the ports are slapd's. The referral target is a
``Listener`` on a held port. ``terminate()`` + ``launch()`` restart the same data, possibly on
new ports: a test that needs a stable URL across a restart puts a ``tests.loopback.Forwarder``
(held port) in front.

Tests that need slapd are marked ``@pytest.mark.slapd``. ``python -m tests.ldap_harness``
starts the same server by hand and prints its URL until interrupted.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ldap3 import Connection, Server

from realms.registries.ldif.format import read_ldif
from tests.loopback import AcceptLoop, Listener, RefusedPort
from tests.patience import STARTUP_SECONDS

LDAP_DIR = Path(__file__).resolve().parent / "ldap"
SLAPD = os.environ.get("JOBSTS_SLAPD", "/usr/sbin/slapd")
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = Path("/etc/ldap/schema")
SEED_REALMS: dict[str, str] = {
    "jobmgr": "dc=jobmgr,dc=example",
    "cellB": "dc=cellb,dc=example",
    "cellC": "dc=cellc,dc=example",
}
ROOT_PASSWORD = "harness-root-secret"
SERVICE_PASSWORD = "sts-password"
RELAX_CONTROL = "1.3.6.1.4.1.4203.666.5.12"  # lets the root DN load entryUUID from the seed files
MANAGE_DSA_IT_CONTROL = "2.16.840.1.113730.3.4.2"  # RFC 3296: add a referral object itself


LAUNCH_ATTEMPTS = 20


class PortTaken(RuntimeError):
    """slapd exited because a candidate port was taken between the pick and its bind."""


def _candidate_port() -> int:
    """A port that was free a moment ago. Only ``SlapdServer.launch`` may use this: it retries
    when the port is gone by the time slapd binds (every other server gets a held socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def seed_files() -> dict[str, Path]:
    return {realm: LDAP_DIR / f"{realm}.ldif" for realm in SEED_REALMS}


def ldif_realm_table(realm: str, **settings: Any) -> dict[str, Any]:
    """A ``[[realms]]`` table for a seed realm on the ``ldif`` backend (same data as slapd)."""
    base = SEED_REALMS[realm]
    registry = {
        "type": "ldif",
        "path": str(seed_files()[realm]),
        "user_base": f"ou=people,{base}",
        "group_base": f"ou=groups,{base}",
    }
    registry.update(settings)
    return {"name": realm, "registry": registry}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def write_tls_material(workdir: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for IP 127.0.0.1 only: (ca, cert, key) PEM files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("jobsts test CA"))
        .issuer_name(_name("jobsts test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (workdir / "ca.pem", workdir / "server.pem", workdir / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


def _slapd_conf(workdir: Path, suffixes: dict[str, str]) -> str:
    lines = [f"include {SCHEMA_DIR / name}.schema" for name in ("core", "cosine", "inetorgperson", "nis")]
    lines += [f"modulepath {MODULE_PATH}"]
    lines += [f"moduleload {m}" for m in ("back_mdb", "memberof", "refint", "ppolicy", "pw-sha2", "argon2")]
    lines += [
        f"TLSCACertificateFile {workdir / 'ca.pem'}",
        f"TLSCertificateFile {workdir / 'server.pem'}",
        f"TLSCertificateKeyFile {workdir / 'server.key'}",
        f"pidfile {workdir / 'slapd.pid'}",
        f"argsfile {workdir / 'slapd.args'}",
        "threads 8",
        # Like the many servers that answer an RFC 4513 §5.1.2 unauthenticated bind (a DN with
        # an empty password) with success: the tests then prove jobsts refuses it by itself.
        "allow bind_anon_cred",
        "sizelimit 500",
        "",
    ]
    for realm, suffix in suffixes.items():
        db_dir = workdir / "db" / realm
        db_dir.mkdir(parents=True)
        lines += [
            "database mdb",
            f'suffix "{suffix}"',
            f'rootdn "cn=root,{suffix}"',
            f"rootpw {ROOT_PASSWORD}",
            f"directory {db_dir}",
            "maxsize 33554432",
            "index objectClass,uid,member,uniqueMember,memberUid,memberOf eq",
            # The service account and each user may read entries; only anonymous binds may
            # compare passwords (auth), nobody reads them.
            "access to attrs=userPassword by anonymous auth by * none",
            f'access to * by dn.exact="cn=sts,ou=services,{suffix}" read by self read by * none',
            "overlay memberof",
            "memberof-refint TRUE",
            # A second instance keeps memberOf for groupOfUniqueNames/uniqueMember too.
            "overlay memberof",
            "memberof-group-oc groupOfUniqueNames",
            "memberof-member-ad uniqueMember",
            "memberof-refint TRUE",
            "overlay refint",
            "refint_attributes member uniqueMember",
            "overlay ppolicy",
            f'ppolicy_default "cn=default,ou=policies,{suffix}"',
            "",
        ]
    return "\n".join(lines)


@dataclass
class SlapdServer:
    """One running slapd with a database per realm; ``start()`` seeds it, ``stop()`` ends it."""

    workdir: Path
    seeds: dict[str, Path] = field(default_factory=seed_files)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    tls_port: int = 0
    referral: Listener | None = None
    launches: int = 0

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        """ldaps:// with a certificate for IP 127.0.0.1 signed by ``ca_file`` (StartTLS works on ``url``)."""
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def ldaps_wrong_host_url(self) -> str:
        """The same ldaps listener reached as 127.0.0.2: a name the certificate does not carry."""
        return f"ldaps://127.0.0.2:{self.tls_port}"

    @property
    def referral_url(self) -> str:
        """Where cellC's ``ou=partners`` refers to: a held ``Listener`` that records any connection."""
        assert self.referral is not None, "start() the server first"
        return f"ldap://127.0.0.1:{self.referral.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.pem"

    def base_dn(self, realm: str) -> str:
        return SEED_REALMS[realm]

    def service_dn(self, realm: str) -> str:
        return f"cn=sts,ou=services,{self.base_dn(realm)}"

    def root_dn(self, realm: str) -> str:
        return f"cn=root,{self.base_dn(realm)}"

    def realm_table(self, realm: str, **settings: Any) -> dict[str, Any]:
        """A ``[[realms]]`` table for ``realm`` on the ``ldap`` backend, pointing at this slapd."""
        base = self.base_dn(realm)
        registry: dict[str, Any] = {
            "type": "ldap",
            "url": self.url,
            "bind_dn": self.service_dn(realm),
            "bind_password": SERVICE_PASSWORD,
            "user_base": f"ou=people,{base}",
            "group_base": f"ou=groups,{base}",
            "connect_timeout": 5,
            "receive_timeout": 10,
        }
        registry.update(settings)
        return {"name": realm, "registry": registry}

    def start(self) -> SlapdServer:
        if not Path(SLAPD).exists():
            raise RuntimeError(f"{SLAPD} not found: install the Debian package slapd (tests/run.sh does)")
        suffixes = {realm: SEED_REALMS[realm] for realm in self.seeds}
        conf = self.workdir / "slapd.conf"
        write_tls_material(self.workdir)
        conf.write_text(_slapd_conf(self.workdir, suffixes))
        self.referral = Listener()
        try:
            self.launch()
            for realm, path in self.seeds.items():
                self._load(realm, path)
            if "cellC" in self.seeds and "jobmgr" in self.seeds:
                self._add_referral()
        except BaseException:
            self.stop()
            raise
        return self

    def launch(self) -> None:
        """Run slapd on the configured data, on fresh ports; retried while a port was taken."""
        for _ in range(LAUNCH_ATTEMPTS):
            self.port, self.tls_port = _candidate_port(), _candidate_port()
            try:
                self._run()
                return
            except PortTaken:
                continue
        raise RuntimeError(f"slapd found no free loopback port in {LAUNCH_ATTEMPTS} attempts")

    def _run(self) -> None:
        self.launches += 1
        log_path = self.workdir / f"slapd-{self.launches}.log"
        log = log_path.open("wb")
        try:
            # -d none: stay in the foreground (we own the process) and print only the messages
            # of no particular level: "slapd starting" and a listener's bind failure.
            self.process = subprocess.Popen(
                [SLAPD, "-f", str(self.workdir / "slapd.conf"), "-h",
                 f"{self.url} {self.ldaps_url} {self.ldaps_wrong_host_url}", "-d", "none"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            log.close()
        try:
            self._wait_ready(log_path)
        except BaseException:
            self.terminate()
            raise

    def _wait_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        assert self.process is not None
        while time.monotonic() < deadline:
            output = log_path.read_text(errors="replace")
            if self.process.poll() is not None:
                if "errno=98" in output:
                    raise PortTaken(output[-500:])
                raise RuntimeError(f"slapd exited with {self.process.returncode}: {output[-2000:]}")
            # Why the log line and not a connection: slapd says "slapd starting" once every
            # listener is bound, so the ports are its own; a connection alone could reach
            # whoever held a port that slapd is about to fail to bind.
            if "slapd starting" in output:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        return
                except OSError:
                    pass
            time.sleep(0.02)
        raise RuntimeError("slapd did not start listening within 30 s")

    def _load(self, realm: str, path: Path) -> None:
        """Add the seed entries over LDAP, so the memberof overlay computes memberOf."""
        server = Server(self.url, connect_timeout=5)
        conn = Connection(server, self.root_dn(realm), ROOT_PASSWORD, receive_timeout=10, raise_exceptions=True)
        try:
            conn.bind()
            for entry in read_ldif(path):
                attributes = {entry.names[key]: values for key, values in entry.attrs.items()}
                add_entry: Any = conn.add  # ldap3's add() is untyped
                add_entry(entry.dn, attributes=attributes, controls=[(RELAX_CONTROL, True, None)])
        finally:
            conn.unbind()

    def _add_referral(self) -> None:
        """``ou=partners,ou=people`` of cellC is a referral to a port where nothing listens
        (``self.referral_url``): a client that followed it would fail with an outage."""
        conn = Connection(Server(self.url), self.root_dn("cellC"), ROOT_PASSWORD, raise_exceptions=True)
        try:
            conn.bind()
            add_entry: Any = conn.add  # ldap3's add() is untyped
            add_entry(
                f"ou=partners,ou=people,{SEED_REALMS['cellC']}",
                attributes={
                    "objectClass": ["referral", "extensibleObject"],
                    "ou": "partners",
                    "ref": f"{self.referral_url}/ou=people,{SEED_REALMS['jobmgr']}",
                },
                controls=[(MANAGE_DSA_IT_CONTROL, True, None)],
            )
        finally:
            conn.unbind()

    def terminate(self) -> None:
        """Stop the slapd process (the data stays; ``launch()`` runs it again)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Stop slapd and release the referral listener."""
        self.terminate()
        if self.referral is not None:
            self.referral.close()
            self.referral = None


@pytest.fixture(scope="session")
def ldap_seed_files() -> dict[str, Path]:
    return seed_files()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlapdServer]:
    """The session's slapd, seeded from tests/ldap/*.ldif (see the module docstring)."""
    server = SlapdServer(tmp_path_factory.mktemp("slapd")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def down_ldap_url() -> Iterator[str]:
    """A held loopback port with nothing listening: connecting is refused at once."""
    with RefusedPort() as port:
        yield port.url("ldap")


@pytest.fixture
def slow_ldap_url() -> Iterator[str]:
    """A socket that completes the TCP handshake (kernel backlog) but never answers a byte."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"ldap://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


# Response tags of RFC 4511 operations, by request tag: BindRequest -> BindResponse,
# ExtendedRequest -> ExtendedResponse, SearchRequest -> SearchResultDone.
_RESPONSE_TAG = {0x60: 0x61, 0x77: 0x78, 0x63: 0x65}


def _response(message_id: bytes, request_tag: int, result_code: int) -> bytes:
    """An LDAPMessage answering ``request_tag`` with ``result_code`` and empty matchedDN/diagnostic."""
    body = b"\x0a\x01" + bytes([result_code]) + b"\x04\x00\x04\x00"
    op = bytes([_RESPONSE_TAG.get(request_tag, 0x78), len(body)]) + body
    content = b"\x02" + bytes([len(message_id)]) + message_id + op
    return b"\x30" + bytes([len(content)]) + content


def _parse_request(data: bytes) -> tuple[bytes, int] | None:
    """(messageID octets, protocolOp tag) of the first BER LDAPMessage in ``data`` (short forms)."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    pos = 2 if data[1] < 0x80 else 2 + (data[1] & 0x7F)
    if len(data) < pos + 2 or data[pos] != 0x02:
        return None
    size = data[pos + 1]
    tag_pos = pos + 2 + size
    if len(data) <= tag_pos:
        return None
    return data[pos + 2 : tag_pos], data[tag_pos]


class FakeDirectory(AcceptLoop):
    """A fake LDAP server: answers every request with ``result_code`` and records what it received.

    ``result_code`` 52 (unavailable) makes StartTLS fail; 51 (busy) makes every bind fail.
    """

    def __init__(self, result_code: int = 52) -> None:
        self.result_code = result_code
        self.received: list[bytes] = []
        super().__init__(accept_timeout=0.2)
        self.url = f"ldap://127.0.0.1:{self.port}"

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(1.0)
        while data := conn.recv(65536):
            self.received.append(data)
            request = _parse_request(data)
            if request is not None:
                conn.sendall(_response(request[0], request[1], self.result_code))


StartTlsRefusingServer = FakeDirectory


@pytest.fixture
def starttls_refusing_server() -> Iterator[FakeDirectory]:
    """A fake directory that answers StartTLS (and everything else) with "unavailable"."""
    server = FakeDirectory(result_code=52)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def busy_directory() -> Iterator[FakeDirectory]:
    """A fake directory that answers every bind with "busy" (51)."""
    server = FakeDirectory(result_code=51)
    try:
        yield server
    finally:
        server.close()


def main() -> None:
    """Start the harness slapd by hand: ``python -m tests.ldap_harness``."""
    workdir = Path(tempfile.mkdtemp(prefix="jobsts-slapd-"))
    server = SlapdServer(workdir).start()
    print(f"slapd running at {server.url} (workdir {workdir}); Ctrl-C stops it", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
