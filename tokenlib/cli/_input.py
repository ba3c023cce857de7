"""What the CLI reads: bounded arguments and files, private keys, JSON objects, certificates.

Every problem here is the operator's input, so it raises :class:`CLIError` (exit 2) with one
line naming the file and what is wrong with it -- never a library's internal framing message
and never key material.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Final

from cryptography import x509

from tokenlib.cli._output import CLIError
from tokenlib.jwk import PrivateKey, load_private_key

__all__ = [
    "MAX_INPUT",
    "add_now",
    "cert_from_bytes",
    "epoch_seconds",
    "json_object",
    "load_key",
    "non_negative_seconds",
    "read_arg",
    "read_file",
]

MAX_INPUT: Final = 1 << 20  # 1 MiB: JWKS documents, certificates, tokens

_PEM_CERT: Final = b"-----BEGIN CERTIFICATE-----"
_PEM_LABELS: Final = (
    (b"-----BEGIN CERTIFICATE REQUEST-----", "a certificate signing request"),
    (b"-----BEGIN PUBLIC KEY-----", "a public key"),
    (b"-----BEGIN RSA PUBLIC KEY-----", "a public key"),
    (b"-----BEGIN X509 CRL-----", "a certificate revocation list"),
)


def read_arg(value: str, what: str) -> str:
    """A token/proof argument: the value itself, or ``-`` for one item on stdin."""
    text = sys.stdin.read(MAX_INPUT + 1) if value == "-" else value
    if len(text) > MAX_INPUT:
        raise CLIError(f"the {what} is larger than {MAX_INPUT} bytes")
    text = text.strip()
    if not text:
        raise CLIError(f"the {what} is empty")
    return text


def read_file(path: str, what: str) -> bytes:
    """Bytes of ``path`` (``-`` = stdin), bounded, with a one-line error."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read(MAX_INPUT + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(MAX_INPUT + 1)
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT:
        raise CLIError(f"the {what} {path!r} is larger than {MAX_INPUT} bytes")
    return data


def _not_a_private_key(data: bytes) -> str | None:
    """What ``data`` is instead of a private key, when it is recognisably something else."""
    if _PEM_CERT in data:
        return "a certificate"
    for marker, kind in _PEM_LABELS:
        if marker in data:
            return kind
    if data.lstrip()[:1] in (b"{", b"["):
        return "JSON (a JWK?)"
    if data[:1] == b"\x30" and b"-----BEGIN" not in data:
        try:
            x509.load_der_x509_certificate(data)
        except ValueError:
            return None
        return "a DER certificate"
    return None


def load_key(path: str) -> PrivateKey:
    """The PEM private key in ``path``; a certificate or public key is named as such."""
    data = read_file(path, "key file")
    if b"PRIVATE KEY-----" not in data:
        kind = _not_a_private_key(data)
        if kind is not None:
            raise CLIError(
                f"{path!r} is {kind}, not a private key: pass the PEM private key file "
                "(-----BEGIN PRIVATE KEY-----)"
            )
    try:
        return load_private_key(data)
    except (ValueError, TypeError) as exc:
        # cryptography's messages never contain key material; keep only the first line.
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CLIError(f"{path!r} is not a usable PEM private key: {reason}") from None


def json_object(data: bytes, what: str) -> dict[str, Any]:
    """``data`` parsed as a JSON object."""
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"the {what} is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise CLIError(f"the {what} is not a JSON object")
    return obj


def cert_from_bytes(data: bytes) -> x509.Certificate | None:
    """A PEM or DER certificate, or ``None`` when ``data`` is something else (a key)."""
    if _PEM_CERT not in data and data[:1] != b"\x30":
        return None
    from tokenlib.mtls import load_certificate

    try:
        return load_certificate(data)
    except ValueError:
        if _PEM_CERT in data:
            raise
        return None


def epoch_seconds(text: str) -> float:
    """An argparse type: a finite number. ``nan`` would make every time comparison false,
    so an expired token would pass as current; ``inf`` would make every token expired."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def non_negative_seconds(text: str) -> int:
    """An argparse type: a whole number of seconds, 0 or more (``--leeway``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {value}")
    return value


def add_now(p: argparse.ArgumentParser) -> None:
    """``--now EPOCH``: an explicit clock, for reproducing a past or future check."""
    p.add_argument(
        "--now",
        type=epoch_seconds,
        metavar="EPOCH",
        help="evaluate at this time (epoch seconds) instead of the system clock",
    )
