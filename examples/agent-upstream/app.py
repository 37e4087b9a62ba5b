"""A small agent API behind Tessera's gateway (issue 15, G1).

Tessera authenticates the caller and forwards the request here with the identity headers and
`X-Tessera-Assertion`, a short-lived JWT signed by Tessera's identity keys. This service trusts
nothing else: it verifies the assertion with PyJWT through Tessera's JWK set (signature, `typ`,
issuer, audience = this upstream's name, expiry), then answers `POST /chat` with a reply
streamed as server-sent events.

Settings (environment):
  TESSERA_JWKS_URL   Tessera's JWK set (default http://127.0.0.1:8000/.well-known/jwks.json)
  TESSERA_ISSUER     TOKEN_ISSUER of Tessera (default "tessera")
  UPSTREAM_NAME      this upstream's name in UPSTREAMS, the assertion's audience (default "agent")
  REPLY_DELAY_MS     pause between streamed words (default 50)

Run:  uvicorn app:app --port 9000
"""

import asyncio
import json
import logging
import os
import sys

import jwt
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

JWKS_URL = os.environ.get("TESSERA_JWKS_URL", "http://127.0.0.1:8000/.well-known/jwks.json")
ISSUER = os.environ.get("TESSERA_ISSUER", "tessera")
AUDIENCE = os.environ.get("UPSTREAM_NAME", "agent")
REPLY_DELAY = int(os.environ.get("REPLY_DELAY_MS", "50")) / 1000
ASSERTION_TYPE = "tessera-assertion+jwt"
ALGORITHMS = ["ES256", "EdDSA", "RS256"]

logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
log = logging.getLogger("agent-upstream")

# Caches the keys; fetches the set again when a token names an unknown `kid` (key rotation).
jwks = jwt.PyJWKClient(JWKS_URL, cache_keys=True, lifespan=300)

app = FastAPI(title="Example agent behind Tessera")


def verified_identity(request: Request) -> dict:
    """The caller, from a verified assertion; 401 for anything else."""
    token = request.headers.get("x-tessera-assertion")
    if not token:
        raise HTTPException(status_code=401, detail="no X-Tessera-Assertion: call me through Tessera")
    try:
        if jwt.get_unverified_header(token).get("typ") != ASSERTION_TYPE:
            raise jwt.InvalidTokenError(f"typ is not {ASSERTION_TYPE}")
        key = jwks.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=ALGORITHMS,
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except (jwt.PyJWTError, jwt.PyJWKClientError) as error:
        log.warning(json.dumps({"event": "assertion_refused", "error": str(error)}))
        raise HTTPException(status_code=401, detail="invalid assertion") from None


class Chat(BaseModel):
    message: str = Field(min_length=1, max_length=4000)


def event(name: str, data) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@app.post("/chat")
async def chat(chat: Chat, identity: dict = Depends(verified_identity)):
    who = {
        "user_id": identity["sub"],
        "username": identity.get("preferred_username"),
        "email": identity.get("email"),
        "roles": identity.get("roles", []),
        "scope": identity.get("scope"),
        "principal": identity.get("principal"),
    }
    log.info(json.dumps({"event": "verified_identity", **who}))

    async def reply():
        yield event("identity", who)
        for word in f"You said: {chat.message}".split():
            yield event("token", {"text": word})
            await asyncio.sleep(REPLY_DELAY)
        yield event("done", {})

    return StreamingResponse(reply(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})


@app.get("/whoami")
async def whoami(identity: dict = Depends(verified_identity)):
    return identity
