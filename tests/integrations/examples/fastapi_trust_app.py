"""A FastAPI app for the server-default trust tests (hypercorn, granian run it in a process).

Configuration from the environment: ``TOKENLIB_TEST_JWKS`` (a JWKS file),
``TOKENLIB_TEST_TRUSTED`` (JSON list of trusted proxies).
"""

import json
import os
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Security

from tests.integrations.examples._support import AS, AUD
from tokenlib.integrations.fastapi import TokenSecurity
from tokenlib.server import Grant, ResourceServer

rs = ResourceServer(
    issuer=AS, audience=AUD, jwks=json.loads(Path(os.environ["TOKENLIB_TEST_JWKS"]).read_text())
)
auth = TokenSecurity(
    rs,
    public_base_url="https://api.lab.invalid",
    trusted_proxies=json.loads(os.environ.get("TOKENLIB_TEST_TRUSTED", "[]")),
)
app = FastAPI()


@app.get("/items")
async def items(grant: Annotated[Grant, Security(auth, scopes=["read"])]) -> dict[str, str]:
    return {"binding": grant.binding}


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}
