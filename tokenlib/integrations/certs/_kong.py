"""Kong Gateway ``tls-metadata-headers`` plugin: ``X-Client-Cert``.

The plugin (Enterprise, with ``mtls-auth`` or ``tls-handshake-modifier``) forwards the
client certificate URL-encoded PEM in ``client_cert_header_name`` (default
``X-Client-Cert``); its ``X-Client-Cert-Fingerprint`` is SHA-1 and is refused
(developer.konghq.com/plugins/tls-metadata-headers).
"""

from __future__ import annotations

from typing import Final

from tokenlib.integrations.certs._common import Format, Spec

KONG: Final = Spec(
    source="kong",
    headers=(("X-Client-Cert", (Format.PEM_URL,)),),
    custom_formats=(Format.PEM_URL, Format.SHA256),
)
