"""Reading the vector files and computing expected thumbprints *without* tokenlib.

Every expected ``x5t#S256`` in these tests comes from ``hashlib`` over DER bytes decoded
here with ``base64`` (or from a vendor's own hex digest), never from the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "vectors"


def x5t(der: bytes) -> str:
    """RFC 8705 §3.1: unpadded base64url of SHA-256 over the DER certificate."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def x5t_from_hex(hex_digest: str) -> str:
    """The ``x5t#S256`` a vendor's hex SHA-256 fingerprint stands for."""
    return base64.urlsafe_b64encode(bytes.fromhex(hex_digest)).rstrip(b"=").decode()


def pem_der(name: str) -> bytes:
    """The DER of the single PEM certificate in ``vectors/<name>``."""
    text = (VECTORS / name).read_text()
    body = text.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----")[0]
    return base64.b64decode("".join(body.split()))


def headers(name: str) -> list[tuple[str, str]]:
    """The ``Name: value`` lines of ``vectors/<name>``; a line starting with whitespace
    continues the previous value (RFC display folding: the whitespace is removed)."""
    pairs: list[tuple[str, str]] = []
    for line in (VECTORS / name).read_text().splitlines():
        if not line.strip():
            continue
        if line[0] in " \t":
            header, value = pairs[-1]
            pairs[-1] = (header, value + line.strip())
            continue
        header, _, value = line.partition(":")
        pairs.append((header.strip(), value.strip()))
    return pairs


def value(name: str) -> str:
    """The value of the only header in ``vectors/<name>``."""
    (only,) = headers(name)
    return only[1]


def rfc9440_leaf_der() -> bytes:
    """RFC 9440 Appendix A, Figure 2: the DER inside ``Client-Cert``."""
    return base64.b64decode(value("rfc9440_appA_client_cert.txt").strip(":"))


def rfc9440_chain_ders() -> list[bytes]:
    """RFC 9440 Appendix A, Figure 3: the DERs inside ``Client-Cert-Chain``."""
    items = re.findall(r":([A-Za-z0-9+/=]+):", value("rfc9440_appA_client_cert_chain.txt"))
    return [base64.b64decode(item) for item in items]


def event(name: str) -> dict[str, Any]:
    """A JSON Lambda event from ``vectors/<name>``."""
    data = json.loads((VECTORS / name).read_text())
    assert isinstance(data, dict)
    return data
