import json
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Security

from tokenlib.integrations.fastapi import TokenSecurity
from tokenlib.server import Grant, ResourceServer

jwks = json.loads(Path("jwks.json").read_text())  # the authorization server's public keys
rs = ResourceServer(issuer="https://as.example.com", audience="https://api.example.com", jwks=jwks)
auth = TokenSecurity(rs, public_base_url="https://api.example.com")
app = FastAPI()


@app.get("/items")
async def items(grant: Annotated[Grant, Security(auth, scopes=["items:read"])]) -> dict[str, str]:
    return {"client": grant.client_id, "binding": grant.binding}
