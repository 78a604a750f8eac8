"""The daemon's log lines, each starting with its node id: many daemons may share one process."""

from __future__ import annotations

import logging

log = logging.getLogger("navarch.daemon")


class NodeLog:
    """Log lines that start with the node id."""

    def __init__(self, node_id: str) -> None:
        self._prefix = f"node {node_id}: "

    def info(self, message: str, *args: object) -> None:
        log.info(self._prefix + message, *args)

    def warning(self, message: str, *args: object) -> None:
        log.warning(self._prefix + message, *args)

    def error(self, message: str, *args: object) -> None:
        log.error(self._prefix + message, *args)

    def exception(self, message: str, *args: object) -> None:
        log.exception(self._prefix + message, *args)
