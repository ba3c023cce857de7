"""``tokenlib thumbprint FILE``: the RFC 7638 JWK thumbprint (``cnf.jkt``, RFC 9449 §6.1) of
a JWK, JWK set with one key or PEM key, or the RFC 8705 §3.1 ``x5t#S256`` of a certificate."""

from __future__ import annotations

import argparse

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tokenlib.cli._input import cert_from_bytes, json_object, read_file
from tokenlib.cli._output import EXIT_OK, CLIError, CLIParser, Subparsers, emit_json, escape, out
from tokenlib.jwk import jwk_thumbprint, load_private_key

__all__ = ["register", "thumbprint_of", "x5t_s256"]


def x5t_s256(cert: x509.Certificate) -> str:
    """The certificate's ``x5t#S256`` (RFC 8705 §3.1)."""
    from tokenlib.mtls import cert_thumbprint

    return cert_thumbprint(cert)


def _key_thumbprint_from_pem(data: bytes, path: str) -> str:
    if b"PRIVATE KEY-----" in data:
        try:
            return jwk_thumbprint(load_private_key(data))
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{path!r} is not a usable private key: {exc}") from None
    try:
        pub = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise CLIError(f"{path!r} is not a usable PEM public key: {exc}") from None
    if not isinstance(pub, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise CLIError(f"{path!r} holds an unsupported key type {type(pub).__name__}")
    try:
        return jwk_thumbprint(pub)
    except ValueError as exc:
        raise CLIError(f"{path!r}: {exc}") from None


def thumbprint_of(path: str) -> tuple[str, str]:
    """(kind, thumbprint) of a JWK / JWKS / PEM key (RFC 7638) or a certificate (RFC 8705)."""
    data = read_file(path, "file")
    stripped = data.lstrip()
    if stripped[:1] in (b"{", b"["):
        obj = json_object(data, f"JWK in {path!r}")
        if "keys" in obj:
            keys = obj["keys"]
            if not isinstance(keys, list) or len(keys) != 1 or not isinstance(keys[0], dict):
                raise CLIError(f"{path!r} is a JWK set; give a file with exactly one key")
            obj = keys[0]
        try:
            return "jwk", jwk_thumbprint(obj)
        except (ValueError, TypeError) as exc:
            raise CLIError(f"{path!r} is not a usable JWK: {exc}") from None
    try:
        cert = cert_from_bytes(data)
    except ValueError as exc:
        raise CLIError(f"{path!r} is not a valid certificate: {exc}") from None
    if cert is not None:
        return "certificate", x5t_s256(cert)
    if b"-----BEGIN" in data:
        return "jwk", _key_thumbprint_from_pem(data, path)
    raise CLIError(f"{path!r} is neither a JWK, a PEM key nor a PEM/DER certificate")


def _cmd_thumbprint(args: argparse.Namespace) -> int:
    kind, value = thumbprint_of(args.file)
    member = "jkt" if kind == "jwk" else "x5t#S256"
    if args.json:
        emit_json({"kind": kind, "thumbprint": value, "cnf": {member: value}})
    else:
        out(escape(value) if args.quiet else f"{member}: {escape(value)}")
    return EXIT_OK


def register(sub: Subparsers[CLIParser], common: CLIParser) -> None:
    """Add ``thumbprint`` to the top-level sub-commands."""
    thumb = sub.add_parser(
        "thumbprint",
        parents=[common],
        help="RFC 7638 thumbprint of a JWK/PEM key, or x5t#S256 of a certificate",
    )
    thumb.add_argument("file", metavar="FILE", help="JWK (JSON), PEM key, PEM/DER certificate, -")
    thumb.add_argument("-q", "--quiet", action="store_true", help="print only the value")
    thumb.set_defaults(func=_cmd_thumbprint)
