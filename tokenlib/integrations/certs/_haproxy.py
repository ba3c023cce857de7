"""HAProxy: ``http-request set-header X-SSL-Client-Cert %[ssl_c_der,base64]``.

``ssl_c_der`` is the client's DER leaf, ``base64`` the standard encoding
(haproxy ``doc/configuration.txt``). A ready digest also works:
``%[ssl_c_der,sha2(256),ub64enc]`` *is* the ``x5t#S256`` (``ub64enc`` is unpadded
base64url, HAProxy ≥ 2.4); ``%[ssl_c_der,sha2(256),hex]`` is converted. ``ssl_c_sha1`` is
SHA-1 and is refused. The header name is the operator's choice.
"""

from __future__ import annotations

from typing import Final

from tokenlib.integrations.certs._common import Format, Spec

HAPROXY: Final = Spec(
    source="haproxy",
    headers=(("X-SSL-Client-Cert", (Format.DER_BASE64, Format.SHA256)),),
    custom_formats=(Format.DER_BASE64, Format.SHA256),
)
