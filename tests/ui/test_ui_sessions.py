"""Dashboard sessions: idle expiry, the cap, the cookie and the page a sign-in returns to."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from navarch.api.codec import ApiError
from navarch.api.ui.routes import _local_next
from navarch.api.ui.sessions import Sessions, session_caller, session_cookie
from navarch.controlplane import Caller


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_session_ends_after_it_goes_unused_for_the_idle_timeout() -> None:
    clock = Clock()
    sessions = Sessions(now=clock, idle_timeout=100)
    session_id, session = sessions.create("viewer")
    clock.now = 90
    assert sessions.get(session_id) == session
    clock.now = 180  # 90 s after its last use
    assert sessions.alive(session_id)
    clock.now = 191
    # Asking whether it lives is not a use.
    assert not sessions.alive(session_id)
    assert sessions.get(session_id) is None
    assert len(sessions) == 0


def test_beyond_the_cap_the_least_recently_used_session_ends() -> None:
    clock = Clock()
    sessions = Sessions(now=clock, limit=2)
    first, _ = sessions.create("admin")
    second, _ = sessions.create("viewer")
    clock.now = 1
    assert sessions.get(first) is not None
    third, _ = sessions.create("admin")
    assert len(sessions) == 2
    assert sessions.get(second) is None
    assert sessions.get(first) is not None
    assert sessions.get(third) is not None


def test_expired_sessions_are_dropped_when_a_new_one_starts() -> None:
    clock = Clock()
    sessions = Sessions(now=clock, idle_timeout=10)
    for _ in range(5):
        sessions.create("viewer")
    clock.now = 11
    sessions.create("admin")
    assert len(sessions) == 1


def test_ids_and_csrf_values_are_random_and_distinct() -> None:
    sessions = Sessions(now=Clock())
    made = [sessions.create("admin") for _ in range(50)]
    values = {session_id for session_id, _ in made} | {session.csrf for _, session in made}
    assert len(values) == 100
    assert all(len(value) == 43 for value in values)


def test_the_cookie_is_found_among_others() -> None:
    assert session_cookie({b"cookie": b"a=1; navarch_session=abc; b=2"}) == "abc"
    assert session_cookie({b"cookie": b'navarch_session="abc"'}) == "abc"
    assert session_cookie({b"cookie": b"navarch_session_old=abc"}) is None
    assert session_cookie({}) is None


def test_a_cookie_call_needs_a_live_session_and_its_csrf_value() -> None:
    sessions = Sessions(now=Clock())
    session_id, session = sessions.create("viewer")
    cookie = f"navarch_session={session_id}".encode()
    assert session_caller(sessions, {}) is None
    assert session_caller(
        sessions, {b"cookie": cookie, b"x-navarch-csrf": session.csrf.encode()}
    ) == Caller("viewer")
    for headers in (
        {b"cookie": cookie},
        {b"cookie": cookie, b"x-navarch-csrf": b"wrong"},
        {b"cookie": b"navarch_session=" + b"x" * 500, b"x-navarch-csrf": b"x"},
    ):
        with pytest.raises(ApiError) as refused:
            session_caller(sessions, headers)
        assert refused.value.code == "unauthenticated"


@given(st.text(max_size=300))
def test_a_sign_in_returns_only_to_a_page_of_the_dashboard(value: str) -> None:
    target = _local_next(value)
    assert target in (value, "/ui/")
    assert target.startswith("/ui/")
    assert target.isascii() and target.isprintable() and " " not in target
    assert "\\" not in target


@given(st.from_regex(r"/ui/[a-z0-9/?=&%._-]{0,50}", fullmatch=True))
def test_a_page_path_is_kept(value: str) -> None:
    assert _local_next(value) == value
