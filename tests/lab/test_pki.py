"""The lab's throwaway PKI: file modes, SANs, usages, and that TLS actually works with it."""

from __future__ import annotations

import ipaddress
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tokenlib.lab.pki import DEFAULT_CLIENTS, LabPKI, create_pki, temporary_pki
from tokenlib.mtls import cert_thumbprint

NOW = 1_760_000_000


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LabPKI:
    return create_pki(tmp_path_factory.mktemp("pki"))


def test_private_keys_are_0600_and_certs_readable(pki: LabPKI) -> None:
    keys = [pki.server_key_file] + [c.key_file for c in pki.clients.values()]
    certs = [pki.ca_cert_file, pki.server_cert_file] + [c.cert_file for c in pki.clients.values()]
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert b"PRIVATE KEY" in path.read_bytes()
    for path in certs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    # The CA key is never written: nothing on disk can mint more certificates.
    on_disk = sorted(p.name for p in pki.directory.iterdir())
    assert on_disk == sorted(
        ["ca.pem", "server.pem", "server.key"]
        + [f"client-{n}.{ext}" for n in DEFAULT_CLIENTS for ext in ("pem", "key")]
    )


def test_server_certificate_names_loopback(pki: LabPKI) -> None:
    cert = x509.load_pem_x509_certificate(pki.server_cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_certificates(pki: LabPKI) -> None:
    assert list(pki.clients) == list(DEFAULT_CLIENTS)
    thumbprints = set()
    for name, identity in pki.clients.items():
        cert = x509.load_pem_x509_certificate(identity.cert_file.read_bytes())
        assert cert == identity.certificate
        assert cert.subject.rfc4514_string() == f"CN={name},O=tokenlib lab"
        assert cert.issuer == pki.ca_certificate.subject
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert identity.x5t_s256 == cert_thumbprint(cert)
        thumbprints.add(identity.x5t_s256)
        cert.verify_directly_issued_by(pki.ca_certificate)
    assert len(thumbprints) == len(DEFAULT_CLIENTS)


def test_validity_follows_the_clock(tmp_path: Path) -> None:
    pki = create_pki(tmp_path, clients=("a",), now=NOW, days=2)
    cert = pki.clients["a"].certificate
    assert cert.not_valid_before_utc.timestamp() == NOW - 300
    assert cert.not_valid_after_utc.timestamp() == NOW + 2 * 86400


def test_repr_hides_key_paths_and_certificates(pki: LabPKI) -> None:
    text = repr(pki)
    assert "server.key" not in text
    assert ".key" not in text
    assert "BEGIN" not in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clients": ("a", "a")}, "unique"),
        ({"clients": ("bad name",)}, "identifiers"),
        ({"days": 0}, "positive"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_pki(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        create_pki(tmp_path / "nope")


def test_temporary_pki_is_removed() -> None:
    with temporary_pki(clients=("a",)) as pki:
        directory = pki.directory
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert pki.clients["a"].key_file.exists()
    assert not directory.exists()


def _handshake(pki: LabPKI, client: str | None, client_auth: str) -> str | None:
    """Run one TLS handshake over loopback; return the client cert CN the server saw."""
    server_ctx = pki.server_context(client_auth=client_auth)  # type: ignore[arg-type]
    seen: list[str | None] = []
    errors: list[BaseException] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls:
                    der = tls.getpeercert(binary_form=True)
                    seen.append(
                        x509.load_der_x509_certificate(der).subject.rfc4514_string()
                        if der
                        else None
                    )
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError) as exc:
                errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=5) as raw,
                pki.client_context(client).wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.recv(2)
        finally:
            thread.join(5)
    if errors:
        raise errors[0]
    return seen[0]


@pytest.mark.parametrize(
    ("client", "client_auth", "expected"),
    [
        ("alice", "optional", "CN=alice,O=tokenlib lab"),
        (None, "optional", None),
        ("bob", "required", "CN=bob,O=tokenlib lab"),
        ("alice", "none", None),
    ],
)
def test_tls_handshake_with_lab_contexts(
    pki: LabPKI, client: str | None, client_auth: str, expected: str | None
) -> None:
    assert _handshake(pki, client, client_auth) == expected


def test_client_context_rejects_a_foreign_ca(pki: LabPKI, tmp_path: Path) -> None:
    other = create_pki(tmp_path, clients=())
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake_with(other, pki)


def _handshake_with(server_pki: LabPKI, client_pki: LabPKI) -> None:
    server_ctx = server_pki.server_context(client_auth="none")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with (
                socket.create_connection(listener.getsockname(), timeout=5) as raw,
                client_pki.client_context().wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                pass
        finally:
            thread.join(5)
