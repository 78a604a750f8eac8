"""Dashboard sessions: who signed in at /ui/signin, remembered by a cookie.

Signing in with the admin token or a viewer token makes a session. The browser keeps only a random
256-bit id in the `navarch_session` cookie; the server keeps the id's SHA-256, so the id is never
compared character by character, and a session's role. Each session also has its own random CSRF
value, which the page reads from `GET /ui/session` and sends back in the `X-Navarch-CSRF` header
of every API call: a page of another site can make a browser send a cookie (SameSite=Strict
already forbids it, this is a second wall) but cannot read the value.

Sessions live in memory: a restarted control plane forgets them and people sign in again. One
that goes unused for `IDLE_TIMEOUT` ends, and beyond `MAX_SESSIONS` the least recently used ends.
"""

from __future__ import annotations

import collections
import hmac
import secrets
from collections.abc import Callable, Mapping

import trio
from attrs import frozen

from navarch.api.codec import ApiError
from navarch.controlplane import Caller
from navarch.controlplane.auth import DashboardRole, token_hash

COOKIE = "navarch_session"
CSRF_HEADER = b"x-navarch-csrf"
IDLE_TIMEOUT = 12 * 3600.0
MAX_SESSIONS = 10_000
# A session id as this module makes them (token_urlsafe(32) is 43 characters); longer cookie
# values are not ours and are not hashed.
_MAX_ID = 64


@frozen
class Session:
    role: DashboardRole
    csrf: str


class Sessions:
    """The signed-in sessions, by the hash of their ids, least recently used first."""

    def __init__(
        self,
        *,
        now: Callable[[], float] = trio.current_time,
        idle_timeout: float = IDLE_TIMEOUT,
        limit: int = MAX_SESSIONS,
    ) -> None:
        self._now = now
        self._idle_timeout = idle_timeout
        self._limit = limit
        # hash of the id -> (session, when it was last used)
        self._sessions: collections.OrderedDict[str, tuple[Session, float]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, role: DashboardRole) -> tuple[str, Session]:
        """A new session and the id its cookie carries."""
        now = self._now()
        self._expire(now)
        session_id = secrets.token_urlsafe(32)
        session = Session(role, secrets.token_urlsafe(32))
        self._sessions[token_hash(session_id)] = (session, now)
        while len(self._sessions) > self._limit:
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str) -> Session | None:
        """The session of `session_id`, now marked used; None when there is none (any more)."""
        key = self._key(session_id)
        entry = self._sessions.get(key) if key else None
        if entry is None:
            return None
        session, used = entry
        now = self._now()
        if now - used > self._idle_timeout:
            del self._sessions[key]
            return None
        self._sessions[key] = (session, now)
        self._sessions.move_to_end(key)
        return session

    def alive(self, session_id: str) -> bool:
        """Whether the session still exists, without marking it used."""
        key = self._key(session_id)
        entry = self._sessions.get(key) if key else None
        return entry is not None and self._now() - entry[1] <= self._idle_timeout

    def drop(self, session_id: str) -> None:
        key = self._key(session_id)
        if key:
            self._sessions.pop(key, None)

    def _expire(self, now: float) -> None:
        while self._sessions:
            key, (_, used) = next(iter(self._sessions.items()))
            if now - used <= self._idle_timeout:
                return
            del self._sessions[key]

    @staticmethod
    def _key(session_id: str) -> str:
        return token_hash(session_id) if 0 < len(session_id) <= _MAX_ID else ""


def session_cookie(headers: Mapping[bytes, bytes]) -> str | None:
    """The value of the session cookie in a request's `Cookie` header, if it has one."""
    for part in headers.get(b"cookie", b"").decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE:
            return value.strip().strip('"')
    return None


def session_caller(sessions: Sessions, headers: Mapping[bytes, bytes]) -> Caller | None:
    """The caller of an API request that carries a session cookie instead of a bearer token;
    None without the cookie, an `unauthenticated` ApiError for a stale session or a missing or
    wrong CSRF header."""
    session_id = session_cookie(headers)
    if session_id is None:
        return None
    session = sessions.get(session_id)
    if session is None:
        raise ApiError(
            "unauthenticated",
            "the dashboard session has ended (signed out, idle too long or the control plane "
            "restarted); sign in again at /ui/signin",
        )
    csrf = headers.get(CSRF_HEADER, b"")
    if not hmac.compare_digest(csrf, session.csrf.encode()):
        raise ApiError(
            "unauthenticated",
            "a call with the session cookie needs the X-Navarch-CSRF header set to the csrf "
            "value of GET /ui/session",
        )
    return Caller(session.role)
