"""OAuth 2.0 access tokens for Compute Engine, kept until shortly before they expire.

A service-account key signs a JWT (RS256) that the key's `token_uri` exchanges for a token; an
`authorized_user` file trades its refresh token; on a VM the metadata server hands one out. The
token is never logged and never part of an error message.
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any

from navarch.plugins import AuthError, ProviderError, TransientError
from navarch_gcp.credentials import (
    AuthorizedUser,
    Credentials,
    CredentialsProblem,
    MetadataServer,
    ServiceAccountKey,
    locate,
)
from navarch_gcp.settings import GcpSettings

if TYPE_CHECKING:
    import httpx

SCOPE = "https://www.googleapis.com/auth/compute"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# A token is renewed this long before Google says it expires, so that no call carries a token
# that runs out on the way.
RENEW_BEFORE = 300.0


class Tokens:
    """The provider's access token, fetched when missing or about to expire."""

    def __init__(self, settings: GcpSettings) -> None:
        import trio  # here, so that loading the plugin keeps navarch fast

        self._settings = settings
        self._token = ""
        # trio.current_time() after which the token is renewed.
        self._renew_at = 0.0
        self._lock = trio.Lock()

    def forget(self) -> None:
        """Drops the token, after Compute Engine refused it."""
        self._token = ""

    async def token(self, http: httpx.AsyncClient) -> str:
        import trio  # here, so that loading the plugin keeps navarch fast

        async with self._lock:
            if not self._token or trio.current_time() >= self._renew_at:
                try:
                    credentials = await trio.to_thread.run_sync(locate, self._settings)
                except CredentialsProblem as exc:
                    raise AuthError(f"gcp: {exc}") from None
                token, lifetime = await _fetch(http, credentials)
                self._token = token
                self._renew_at = trio.current_time() + max(lifetime - RENEW_BEFORE, lifetime / 2)
            return self._token


async def _fetch(http: httpx.AsyncClient, credentials: Credentials) -> tuple[str, float]:
    """A new token and its lifetime in seconds."""
    import httpx

    try:
        if isinstance(credentials, MetadataServer):
            what = "the metadata server"
            response = await http.get(
                f"{credentials.url}/instance/service-accounts/default/token",
                headers={"Metadata-Flavor": "Google"},
            )
        else:
            what = f"the token endpoint {credentials.token_uri} (for {credentials.path})"
            response = await http.post(credentials.token_uri, data=_grant(credentials))
    except httpx.TransportError as exc:
        raise TransientError(f"gcp: no token from {what}: {type(exc).__name__}: {exc}") from exc
    if response.status_code == 429 or response.status_code >= 500:
        raise TransientError(f"gcp: no token from {what}: HTTP {response.status_code}")
    body = _json(response)
    if not response.is_success:
        # OAuth's error shape: {"error": "invalid_grant", "error_description": "..."}.
        reason = " ".join(
            str(body.get(key)) for key in ("error", "error_description") if body and body.get(key)
        )
        raise AuthError(
            f"gcp: {what} refused the credentials: HTTP {response.status_code} {reason}".rstrip()
        )
    if body is None:
        raise ProviderError(f"gcp: {what} answered with something that is not a JSON object")
    token, lifetime = body.get("access_token"), body.get("expires_in", 3600)
    if not isinstance(token, str) or not token:
        raise ProviderError(f"gcp: {what} answered without an 'access_token' field")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        raise ProviderError(f"gcp: {what} answered without a usable 'expires_in' field")
    return token, float(lifetime)


def _grant(credentials: ServiceAccountKey | AuthorizedUser) -> dict[str, str]:
    if isinstance(credentials, AuthorizedUser):
        return {
            "grant_type": "refresh_token",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "refresh_token": credentials.refresh_token,
        }
    return {"grant_type": JWT_BEARER, "assertion": assertion(credentials, time.time())}


def assertion(key: ServiceAccountKey, now: float) -> str:
    """The signed JWT that a service account trades for a token. `now` is the wall clock: the
    token endpoint checks `iat` and `exp` against its own."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    header: dict[str, Any] = {"alg": "RS256", "typ": "JWT"}
    if key.private_key_id:
        header["kid"] = key.private_key_id
    issued = int(now)
    claims = {
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": key.token_uri,
        "iat": issued,
        "exp": issued + 3600,
    }
    signing_input = f"{_b64(json.dumps(header))}.{_b64(json.dumps(claims))}".encode()
    private = load_pem_private_key(key.private_key.encode(), password=None)
    if not isinstance(private, RSAPrivateKey):  # read_file checked it; the file may have changed
        raise AuthError(f"gcp: {key.path}: 'private_key' is not a PEM RSA private key")
    signature = private.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{_b64(signature)}"


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
