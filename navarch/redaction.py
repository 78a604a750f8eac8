"""Hiding the credentials that people put inside URLs, before a URL is shown or logged.

A webhook or queue URL often carries its secret (`https://user:pass@host`, `?token=...`,
`?X-Amz-Signature=...`). `redact_url` keeps the rest of the URL readable, so that the line still
says where it points: `https://<redacted>@host/path?token=<redacted>&pool=dev`.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

REDACTED = "<redacted>"

# A query parameter is secret when a word of its name ends with one of these (`access_token`,
# `apiKey`, `X-Amz-Signature`), or is one of the short words below.
_SECRET_ENDINGS = ("token", "secret", "password", "passwd", "key", "signature", "credential")
_SECRET_WORDS = frozenset({"sig", "auth", "pwd", "pass", "credentials"})
_WORD = re.compile(r"[^a-z0-9]+")


def redact_url(url: str) -> str:
    """`url` with its user information and its secret-looking query values replaced."""
    if "://" not in url:
        return url
    # The user information ends at the last "@" before the first "/", as libpq reads it: a
    # password may hold "?", "#", "[" or "]", which end or break the authority for urlsplit.
    scheme, sep, rest = url.partition("://")
    end = rest.find("/")
    at = rest.rfind("@", 0, len(rest) if end < 0 else end)
    if at >= 0:
        url = f"{scheme}{sep}{REDACTED}{rest[at:]}"
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all; the user information is already hidden
        return url
    netloc = parts.netloc
    query = "&".join(_redact_parameter(p) for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def is_secret_name(name: str) -> bool:
    """Whether a query parameter or key named `name` holds a secret."""
    words = [w for w in _WORD.split(name.lower()) if w]
    return any(w in _SECRET_WORDS or w.endswith(_SECRET_ENDINGS) for w in words)


def _redact_parameter(parameter: str) -> str:
    name, sep, value = parameter.partition("=")
    if sep and value and is_secret_name(name):
        return f"{name}={REDACTED}"
    return parameter
