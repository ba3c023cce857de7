"""Fixtures shared with the lab tests: real redis-server, PKI, free ports."""

from tests.lab.conftest import (  # noqa: F401  (pytest finds fixtures by name)
    anyio_backend,
    pki,
    redis_server,
    self_signed,
)
