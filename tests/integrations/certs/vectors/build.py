"""Rebuild the *constructed* vectors (see SOURCES.md) from real certificates.

Vendor documentation truncates its example values (``MIIG<...reduced...>NmrUlw``), so
these files apply each vendor's documented encoding to real certificates kept here:
``node_oidc_provider_client.crt`` (node-oidc-provider test client) and the RFC 9440
Appendix A leaf and chain. Run ``python build.py`` in this directory; the tests never run
it, they read the files it wrote and recompute every expected ``x5t#S256`` from the DER.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import quote, quote_plus

HERE = Path(__file__).parent


def pem_blocks(text: str) -> list[str]:
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", text, re.S)


def der_of(pem: str) -> bytes:
    body = pem.split("-----")[2]
    return base64.b64decode("".join(body.split()))


def pem_of(der: bytes) -> str:
    b64 = base64.b64encode(der).decode()
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def rfc9440_leaf_der() -> bytes:
    text = (HERE / "rfc9440_appA_client_cert.txt").read_text()
    value = "".join(line.strip() for line in text.split(":", 1)[1].splitlines())
    return base64.b64decode(value.strip().strip(":"))


def rfc9440_chain_ders() -> list[bytes]:
    text = (HERE / "rfc9440_appA_client_cert_chain.txt").read_text()
    value = "".join(line.strip() for line in text.split(":", 1)[1].splitlines())
    return [base64.b64decode(item.strip().strip(":")) for item in value.split(",")]


def write(name: str, header: str, value: str) -> None:
    (HERE / name).write_text(f"{header}: {value}\n")


def main() -> None:
    node = (HERE / "node_oidc_provider_client.crt").read_text()
    node_der = der_of(node)
    leaf_der = rfc9440_leaf_der()
    chain = [leaf_der, *rfc9440_chain_ders()]
    node_pem = pem_of(node_der)

    # AWS ALB: "URL-encoded PEM format of the leaf certificate, with +=/ as safe characters".
    write("aws_alb_leaf.txt", "X-Amzn-Mtls-Clientcert-Leaf", quote(node_pem, safe="+=/"))
    write(
        "aws_alb_passthrough_chain.txt",
        "X-Amzn-Mtls-Clientcert",
        quote("".join(pem_of(d) for d in chain), safe="+=/"),
    )
    # NGINX $ssl_client_escaped_cert: ngx_escape_uri(NGX_ESCAPE_URI_COMPONENT) of the PEM.
    write("nginx_escaped_cert.txt", "X-SSL-Client-Cert", quote(node_pem, safe=""))
    # Kong tls-metadata-headers: ngx.escape_uri of the PEM.
    write("kong_x_client_cert.txt", "X-Client-Cert", quote(pem_of(leaf_der), safe=""))
    # HAProxy %[ssl_c_der,base64] and %[ssl_c_der,sha2(256),ub64enc].
    write("haproxy_ssl_c_der_base64.txt", "X-SSL-Client-Cert", base64.b64encode(node_der).decode())
    digest = hashlib.sha256(node_der).digest()
    write(
        "haproxy_sha2_ub64enc.txt",
        "X-SSL-Client-Cert",
        base64.urlsafe_b64encode(digest).decode().rstrip("="),
    )
    # Azure App Service X-ARR-ClientCert: base64 DER.
    write("azure_x_arr_clientcert.txt", "X-ARR-ClientCert", base64.b64encode(leaf_der).decode())
    # GCP: {client_cert_leaf} (RFC 9440) and {client_cert_sha256_fingerprint} (std base64).
    (HERE / "gcp_custom_headers.txt").write_text(
        f"X-Client-Cert-Leaf: :{base64.b64encode(leaf_der).decode()}:\n"
        f"X-Client-Cert-Hash: {base64.b64encode(hashlib.sha256(leaf_der).digest()).decode()}\n"
    )
    # Cloudflare client_certificate_forwarding.
    write(
        "cloudflare_der_base64.txt",
        "Cf-Client-Cert-Der-Base64",
        base64.b64encode(node_der).decode(),
    )
    # CloudFront: -Pem (URL-encoded PEM leaf) with -Sha256 (hex) of the same certificate.
    (HERE / "cloudfront_pem_and_sha256.txt").write_text(
        f"CloudFront-Viewer-Cert-Pem: {quote(pem_of(leaf_der), safe='')}\n"
        f"CloudFront-Viewer-Cert-Sha256: {hashlib.sha256(leaf_der).hexdigest()}\n"
    )
    # Traefik <= v2.9.1: url.QueryEscape of each armour-less body, joined with ",".
    bodies = [
        "".join(der_of_text.split("-----")[2].split())
        for der_of_text in (
            (HERE / "traefik_minimal.crt").read_text(),
            (HERE / "traefik_minimal_cheese.crt").read_text(),
        )
    ]
    write(
        "traefik_v2_escaped_chain.txt",
        "X-Forwarded-Tls-Client-Cert",
        ",".join(quote_plus(b, safe="") for b in bodies),
    )
    write("traefik_v3_chain.txt", "X-Forwarded-Tls-Client-Cert", ",".join(bodies))
    # API Gateway Lambda events (shape of the AWS docs' examples, full PEM).
    rest = {
        "resource": "/",
        "httpMethod": "GET",
        "requestContext": {
            "identity": {
                "sourceIp": "192.0.2.1",
                "clientCert": {
                    "clientCertPem": node_pem,
                    "subjectDN": "CN=mtls",
                    "issuerDN": "CN=mtls",
                    "serialNumber": "2",
                    "validity": {
                        "notBefore": "Oct 18 12:37:09 2018 GMT",
                        "notAfter": "May  2 12:37:09 2022 GMT",
                    },
                },
            }
        },
    }
    http_v2 = {
        "version": "2.0",
        "routeKey": "$default",
        "requestContext": {
            "authentication": {
                "clientCert": {
                    "clientCertPem": pem_of(leaf_der),
                    "subjectDN": "CN=BC",
                    "issuerDN": "O=Let's Authenticate,CN=LA Intermediate CA",
                    "serialNumber": "7",
                    "validity": {
                        "notBefore": "Jan 14 22:55:33 2020 GMT",
                        "notAfter": "Jan 23 22:55:33 2021 GMT",
                    },
                }
            },
            "http": {"method": "GET", "path": "/"},
        },
    }
    (HERE / "aws_lambda_rest_event.json").write_text(json.dumps(rest, indent=2) + "\n")
    (HERE / "aws_lambda_http_v2_event.json").write_text(json.dumps(http_v2, indent=2) + "\n")


if __name__ == "__main__":
    main()
