"""Fixtures for the prototype-kit tests: a private redis-server, throwaway PKI, live servers."""

from __future__ import annotations

import datetime as dt
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tokenlib.jwk import write_private_key
from tokenlib.lab.pki import LabPKI, create_pki
from tokenlib.mtls import cert_thumbprint

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    """A currently free loopback TCP port (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisExited(RuntimeError):
    """redis-server exited at start (its port was taken meanwhile, or bad settings)."""


@dataclass
class RedisServer:
    """A redis-server of our own on 127.0.0.1, in tmp_path, without persistence; ``extra``
    command-line settings are appended (eviction policy, maxmemory, cluster mode...)."""

    binary: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None:
            return
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code, self.process = self.process.returncode, None
                raise RedisExited(f"redis-server exited with {code} (settings {self.extra!r})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)  # bounded wait for the server to start, not a clock dependency
        self.stop()
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def anyio_backend() -> str:
    """``@pytest.mark.anyio`` tests run on asyncio (what uvicorn uses)."""
    return "asyncio"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("no redis-server binary on PATH (apt-get install redis-server; .ci/run does)")
    server = RedisServer(binary=REDIS_SERVER, directory=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ----------------------------------------------------------------------------- PKI


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    """A throwaway CA, a server cert for 127.0.0.1 and client certs alice/bob/mallory."""
    return create_pki(tmp_path_factory.mktemp("pki"))


@dataclass(frozen=True)
class SelfSigned:
    cert_file: Path
    key_file: Path
    pem: str
    thumbprint: str


@pytest.fixture(scope="session")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """A self-signed client certificate (RFC 8705 §2.2 self_signed_tls_client_auth)."""
    directory = tmp_path_factory.mktemp("selfsigned")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "carol-self-signed")])
    start = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_file, key_file = directory / "carol.pem", directory / "carol.key"
    cert_file.write_text(pem)
    write_private_key(key_file, key)
    return SelfSigned(cert_file, key_file, pem, cert_thumbprint(cert))


def server_context(
    pki: LabPKI, *, client_auth: str = "optional", extra_ca: str | None = None
) -> ssl.SSLContext:
    ctx = pki.server_context(client_auth=client_auth)  # type: ignore[arg-type]
    if extra_ca is not None:
        ctx.load_verify_locations(cadata=extra_ca)
    return ctx
