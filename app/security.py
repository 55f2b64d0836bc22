"""Optional API key for inference and the bearer token of the admin endpoints (constant-time comparisons)."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="needed when WAVE_API_KEY is set")
admin_bearer = HTTPBearer(auto_error=False, description="the WAVE_ADMIN_TOKEN value")


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> None:
    """401 unless the configured API key is given (no key configured: open)."""
    expected = request.app.state.settings.api_key
    if expected is None:
        return
    if key is None or not _same(key, expected.get_secret_value()):
        raise HTTPException(
            401, "missing or wrong API key: send header X-API-Key", headers={"WWW-Authenticate": "ApiKey"}
        )


async def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(admin_bearer)]
) -> None:
    """404 while no admin token is configured; 401 unless the bearer token matches it."""
    expected = request.app.state.settings.admin_token
    if expected is None:
        raise HTTPException(404, "admin endpoints are off: set WAVE_ADMIN_TOKEN to enable them")
    if credentials is None or not _same(credentials.credentials, expected.get_secret_value()):
        raise HTTPException(401, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"})
