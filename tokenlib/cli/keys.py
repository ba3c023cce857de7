"""``tokenlib keys generate``: a signing key written 0600, its public JWK printed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import serialization

from tokenlib._atomic import atomic_write_bytes
from tokenlib.cli._output import (
    EXIT_OK,
    CLIError,
    CLIParser,
    Subparsers,
    emit_json,
    out,
    stderr,
)
from tokenlib.jwk import generate_key, jwk_thumbprint, public_jwk, write_private_key

__all__ = ["GENERATABLE", "register"]

GENERATABLE: Final = ("ES256", "ES384", "ES512", "EdDSA", "Ed25519", "PS256", "RS256")


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    target = Path(args.out)
    if target.exists() and not args.force:
        raise CLIError(f"{str(target)!r} exists; pass --force to replace it")
    if not target.parent.is_dir():
        raise CLIError(f"directory {str(target.parent)!r} does not exist")
    key = generate_key(args.alg)
    write_private_key(target, key)
    jwk: dict[str, str] = dict(public_jwk(key))
    thumbprint = jwk_thumbprint(key)
    jwk.update({"alg": args.alg, "use": "sig", "kid": args.kid or thumbprint})
    if args.public_out:
        doc = {"keys": [jwk]} if args.jwks else jwk
        atomic_write_bytes(Path(args.public_out), (json.dumps(doc, indent=2) + "\n").encode())
    private_pem: str | None = None
    if args.show_private:
        private_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
    if args.json:
        record: dict[str, object] = {
            "private_key_file": str(target),
            "mode": "0600",
            "alg": args.alg,
            "kid": jwk["kid"],
            "jkt": thumbprint,
            "public_jwk": jwk,
            "public_key_file": args.public_out,
        }
        if private_pem is not None:
            record["private_key_pem"] = private_pem
        emit_json(record)
    else:
        stderr(f"wrote private key {target} (mode 0600); jkt {thumbprint}")
        out(json.dumps(jwk, indent=2))
        if private_pem is not None:
            out(private_pem.rstrip("\n"))  # our own PKCS#8 PEM: ASCII
    return EXIT_OK


def register(sub: Subparsers[CLIParser], common: CLIParser) -> None:
    """Add ``keys generate`` to the top-level sub-commands."""
    keys = sub.add_parser("keys", help="generate signing keys", parents=[common])
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = keys_sub.add_parser(
        "generate",
        parents=[common],
        help="generate a private key (written 0600) and print its public JWK",
        description="Generate a private key, write it as PKCS#8 PEM with mode 0600 "
        "(atomically), and print the public JWK. Nothing secret is printed "
        "unless --show-private is given.",
    )
    gen.add_argument("--alg", choices=GENERATABLE, default="ES256", help="default: ES256")
    gen.add_argument("--out", required=True, metavar="PATH", help="private key file (PEM)")
    gen.add_argument("--public-out", metavar="PATH", help="also write the public JWK here")
    gen.add_argument("--jwks", action="store_true", help="write --public-out as a JWK set")
    gen.add_argument("--kid", help="key id (default: the RFC 7638 thumbprint)")
    gen.add_argument("--force", action="store_true", help="replace an existing --out file")
    gen.add_argument(
        "--show-private", action="store_true", help="also print the private key PEM (secret!)"
    )
    gen.set_defaults(func=_cmd_keys_generate)
