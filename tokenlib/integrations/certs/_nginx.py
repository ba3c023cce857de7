"""NGINX: ``proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;``.

``$ssl_client_escaped_cert`` (nginx ≥ 1.13.5, ``ngx_http_ssl_module``) is the client's PEM
certificate, URL-encoded. The header name is the operator's choice; ``X-SSL-Client-Cert``
is the common one. ``$ssl_client_fingerprint`` is SHA-1 and is refused.
"""

from __future__ import annotations

from typing import Final

from tokenlib.integrations.certs._common import Format, Spec

NGINX: Final = Spec(
    source="nginx",
    headers=(("X-SSL-Client-Cert", (Format.PEM_URL, Format.SHA256)),),
    custom_formats=(Format.PEM_URL, Format.SHA256),
)
