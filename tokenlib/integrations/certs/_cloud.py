"""Google Cloud Application Load Balancer, Cloudflare and Amazon CloudFront.

GCP (cloud.google.com/load-balancing/docs/custom-headers, mTLS variables): headers are
custom request headers the operator names; ``{client_cert_sha256_fingerprint}`` is the
*standard base64* SHA-256 of the DER leaf (alphabet swap → ``x5t#S256``),
``{client_cert_leaf}`` the RFC 9440 Byte Sequence. Default names are those of Google's
"Set up mutual TLS" custom-header example: ``X-Client-Cert-Leaf`` and ``X-Client-Cert-Hash``.
An empty value means "no certificate" (mode "allow invalid or missing").

Cloudflare (developers.cloudflare.com, "Forward a client certificate"): with
``client_certificate_forwarding`` the origin gets ``Cf-Client-Cert-Der-Base64`` (base64
DER) and ``Cf-Client-Cert-Sha256``. Transform Rules can instead set
``cf.tls_client_auth.cert_rfc9440`` (RFC 9440) or ``cert_fingerprint_sha256`` (hex), and the
managed transform sends ``cf-cert-fingerprint-sha256`` (hex): name those with ``header=``.

CloudFront viewer mTLS (docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/
viewer-mtls-headers.html): ``CloudFront-Viewer-Cert-Sha256`` (64 hex digits) and, to origins,
``CloudFront-Viewer-Cert-Pem`` (URL-encoded PEM leaf).
"""

from __future__ import annotations

from typing import Final

from tokenlib.integrations.certs._common import Format, Spec

GCP: Final = Spec(
    source="gcp",
    headers=(
        ("X-Client-Cert-Leaf", (Format.RFC9440,)),
        ("X-Client-Cert-Hash", (Format.SHA256,)),
    ),
    custom_formats=(Format.RFC9440, Format.SHA256),
)

CLOUDFLARE: Final = Spec(
    source="cloudflare",
    headers=(
        ("Cf-Client-Cert-Der-Base64", (Format.DER_BASE64,)),
        ("Cf-Client-Cert-Sha256", (Format.SHA256,)),
    ),
    custom_formats=(Format.RFC9440, Format.DER_BASE64, Format.SHA256),
)

CLOUDFRONT: Final = Spec(
    source="cloudfront",
    headers=(
        ("CloudFront-Viewer-Cert-Pem", (Format.PEM_URL,)),
        ("CloudFront-Viewer-Cert-Sha256", (Format.SHA256,)),
    ),
    custom_formats=(Format.PEM_URL, Format.SHA256, Format.RFC9440),
)
