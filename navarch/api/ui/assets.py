"""The dashboard's static files, read once from the package data (`navarch/api/ui/static/`).

Only files found there when the dashboard starts are served, each by its path under `static/`:
a request names a key of that table, never a path on disk, so no name reaches outside the folder.
Files of a type not in `CONTENT_TYPES` and hidden files are left out.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import PurePosixPath

from attrs import frozen

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".webp": "image/webp",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}


@frozen
class Asset:
    body: bytes
    content_type: str
    # A strong validator: the quoted start of the body's SHA-256.
    etag: str


def load_assets(root: Traversable | None = None) -> dict[str, Asset]:
    """Every servable file under `root` (the package's `static/`), by its relative path."""
    if root is None:
        root = resources.files("navarch.api.ui").joinpath("static")
    assets: dict[str, Asset] = {}
    if root.is_dir():
        _collect(root, PurePosixPath(), assets)
    return assets


def _collect(folder: Traversable, prefix: PurePosixPath, assets: dict[str, Asset]) -> None:
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            _collect(entry, prefix / entry.name, assets)
            continue
        content_type = CONTENT_TYPES.get(PurePosixPath(entry.name).suffix.lower())
        if content_type is None:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        assets[str(prefix / entry.name)] = Asset(body, content_type, etag)
