"""The C and the pure-Python reader state machines give the same results for the same input."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.kmsg import FORMATS, engine_module, record


@pytest.fixture(scope="module")
def both() -> tuple[ModuleType, ModuleType]:
    return engine_module("cffi"), engine_module("python")


messages = st.one_of(
    st.sampled_from([line for line, _ in FORMATS.values()]),
    st.text(max_size=60).map(lambda s: s.replace("\n", " ")),
)
records = st.builds(
    lambda seq, message, facility: record(seq, message, facility=facility),
    st.integers(0, 60),
    messages,
    st.sampled_from([0, 0, 0, 1]),
)
lines = st.one_of(
    records,
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    st.sampled_from([b"\n", b" SUBSYSTEM=pci\n", b"6,1,2,-\n"]),
    st.integers(16_370, 40_000).map(lambda n: b"6,1,2,-;" + b"x" * n + b"\n"),
)


def run(engine: Any, data: bytes, cuts: list[int], cap: int, only_xid: bool, skip: int | None):
    """Feeds `data` through a pipe in pieces, draining after each; returns everything seen."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    drain = engine.Drain(r, engine.MODE_STREAM, trust_user=False)
    if skip is not None:
        drain.resume_after(skip)
    seen: list[Any] = []
    try:
        pos = 0
        # Pieces stay below the pipe's capacity, and each is drained before the next.
        for cut in [*cuts, *[16_000] * (len(data) // 16_000 + 1)]:
            if pos >= len(data):
                break
            chunk = data[pos : pos + cut]
            pos += len(chunk)
            os.write(w, chunk)
            while True:
                status, got = drain.drain(cap, only_xid=only_xid)
                seen.append((status, got))
                if status != engine.FULL:
                    break
        os.close(w)
        w = -1
        while True:
            status, got = drain.drain(cap, only_xid=only_xid)
            seen.append((status, got))
            if status == engine.EOF:
                break
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    seen.append((drain.stats(), drain.last_seq))
    return seen


@settings(max_examples=200)
@given(
    st.lists(lines, max_size=30),
    st.lists(st.integers(1, 20_000), max_size=12),
    st.integers(1, 4),
    st.booleans(),
    st.none() | st.integers(0, 60),
)
def test_engines_read_streams_alike(
    both: tuple[ModuleType, ModuleType],
    chunks: list[bytes],
    cuts: list[int],
    cap: int,
    only_xid: bool,
    skip: int | None,
) -> None:
    data = b"".join(chunks)
    c, python = both
    assert run(c, data, cuts, cap, only_xid, skip) == run(python, data, cuts, cap, only_xid, skip)
