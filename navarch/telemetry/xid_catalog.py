"""NVIDIA's XID catalog as data: what each code means and what NVIDIA says to do about it.

The entries live in xid_catalog.json, which xid_catalog_build generates from a saved copy of
NVIDIA's table; it lists every code NVIDIA's catalog lists, unused ones included. Each has the
catalog's two resolution buckets: the Immediate one (what to do now) and the Investigatory one
(what to do if it happens again or to find the cause). docs/xid.md lists every entry and explains
the buckets.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import resources

import attrs


@attrs.frozen
class XidCatalogEntry:
    code: int
    mnemonic: str  # NVIDIA's name, such as ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS
    name: str
    immediate: str | None  # resolution bucket; None where the catalog gives none
    investigatory: str | None
    description: str  # navarch's words
    nvidia_description: str  # NVIDIA's Description column, as the catalog gives it
    architectures: tuple[str, ...]  # those of A100, H100, B100 and GB200 the code applies to
    unused: bool  # NVIDIA marks the code unused; older drivers may still log it


@attrs.frozen
class XidCatalog:
    source: str  # the NVIDIA catalog snapshot the entries follow
    buckets: Mapping[str, str]  # bucket -> what it asks for
    entries: Mapping[int, XidCatalogEntry]  # by code, in code order


@functools.cache
def catalog() -> XidCatalog:
    data = json.loads(resources.files(__package__).joinpath("xid_catalog.json").read_text())
    return XidCatalog(
        source=data["source"],
        buckets=dict(data["buckets"]),
        entries={
            e["code"]: XidCatalogEntry(**{**e, "architectures": tuple(e["architectures"])})
            for e in data["codes"]
        },
    )


def lookup(code: int) -> XidCatalogEntry | None:
    """The catalog entry for an XID code, or None when navarch's catalog does not list it."""
    return catalog().entries.get(code)
