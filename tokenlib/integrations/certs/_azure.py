"""Azure App Service: ``X-ARR-ClientCert``.

With ``clientCertEnabled`` the App Service front end terminates TLS and forwards the
client's certificate to the app as base64 DER in ``X-ARR-ClientCert``; it does not validate
it (learn.microsoft.com/azure/app-service/app-service-web-configure-tls-mutual-auth).
``header=`` reads another name (ASP.NET Core's ``CertificateForwarding`` default
``X-Client-Cert`` uses the same encoding).
"""

from __future__ import annotations

from typing import Final

from tokenlib.integrations.certs._common import Format, Spec

APP_SERVICE: Final = Spec(
    source="azure_app_service",
    headers=(("X-ARR-ClientCert", (Format.DER_BASE64,)),),
    custom_formats=(Format.DER_BASE64, Format.SHA256),
)
