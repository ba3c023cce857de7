# settings.py
import json
from pathlib import Path

from tokenlib.server import ResourceServer

INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tokenlib.integrations.drf.DPoPAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "tokenlib.integrations.drf.exception_handler",
}
TOKENLIB = {
    "RESOURCE_SERVER": ResourceServer(
        issuer="https://as.example.com",
        audience="https://api.example.com",
        jwks=json.loads(Path("jwks.json").read_text()),  # the authorization server's keys
    ),
    "PUBLIC_BASE_URL": "https://api.example.com",  # the origin clients sign proofs for
}
