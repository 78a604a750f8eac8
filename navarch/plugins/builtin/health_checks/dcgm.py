"""The `dcgm` health check: NVIDIA DCGM's active diagnostics, run when the control plane asks.

`dcgmi diag -r LEVEL -j` runs DCGM's tests at one of four levels (1 quick, 2 medium, 3 long,
4 extended) and prints their results as JSON, one result per test and GPU. A diagnostic takes
the GPUs for seconds to hours, so the check runs only on a run_diagnostic command (a pool's
preflight sends one), never every health-check interval. Each Pass, Warn and Fail becomes a
`diagnostic` event; the health policy judges them.

DCGM changed its JSON between major versions: 3.x puts the results under "DCGM GPU Diagnostic"
with the GPU in `gpu_ids` (a list like "0,1,2" for tests of the whole machine), 4.x under
"DCGM Diagnostic" with `entity_group` and `entity_id`. Both are read. A dcgmi that is not
installed, or whose host engine (nv-hostengine) does not answer, is reported once as a
`check_failed` event and fails the command; it is reported again only once it changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from attrs import field, frozen

from navarch.plugins import Diagnosis, HealthEvent, HealthEventType, WallClock, validators
from navarch.plugins.builtin.health_checks.diagnostic_process import (
    DiagnosticTimedOut,
    run_diagnostic_process,
)

if TYPE_CHECKING:
    pass

# The words DCGM writes for a result, in any case, and the result they mean.
_RESULTS = {
    "pass": "pass",
    "warn": "warn",
    "warning": "warn",
    "fail": "fail",
    "skip": "skip",
    "skipped": "skip",
    "not run": "skip",
}
# What dcgmi prints when its host engine does not answer ("Unable to establish a connection to
# the specified host", "Host engine connection invalid/disconnected").
_NO_HOST_ENGINE = ("connection", "host engine", "hostengine")
# The most characters of one result's warnings kept in its event's message.
_MESSAGE_LIMIT = 500


def _utc_now() -> datetime:
    return datetime.now(UTC)


@frozen(kw_only=True)
class DcgmCheckSettings:
    # Run DCGM's diagnostics on run_diagnostic commands; false leaves them out on a machine
    # without DCGM, where they would fail every command.
    enabled: bool = True
    # The dcgmi program; tests point it at a script of their own.
    dcgmi: str = "dcgmi"
    # The level a run_diagnostic command without a `level` parameter runs.
    level: int = field(default=1, validator=validators.between(1, 4))
    # A diagnostic still running after this long is killed, with its process group, and fails.
    timeout: timedelta = field(default=timedelta(hours=1), validator=validators.positive)


@frozen(kw_only=True)
class DcgmResult:
    """One test's result on one GPU (index -1: the machine)."""

    category: str
    test: str
    gpu_index: int
    # "pass", "warn", "fail" or "skip".
    result: str
    message: str = ""


class DcgmCheck:
    """Runs `dcgmi diag` on demand and reports each test's result per GPU."""

    Settings = DcgmCheckSettings

    def __init__(self, settings: DcgmCheckSettings, *, wall_clock: WallClock = _utc_now) -> None:
        self.settings = settings
        self._wall_clock = wall_clock
        # What kept DCGM from running last time, reported once; None while DCGM works.
        self._unavailable: str | None = None

    async def diagnose(self, level: int | None) -> Diagnosis | None:
        if not self.settings.enabled:
            return None
        level = level or self.settings.level
        try:
            output = await self._run(level)
        except _Unavailable as exc:
            return self._unavailable_diagnosis(str(exc))
        except _TimedOut as exc:
            self._unavailable = None
            return Diagnosis(
                ok=False,
                summary=f"dcgm level {level}: {exc}",
                events=(self._event("dcgm", "", -1, "fail", str(exc), level),),
            )
        self._unavailable = None
        try:
            results = parse_diag(output)
        except ValueError as exc:
            why = f"could not read the output of dcgmi diag: {exc}"
            return Diagnosis(
                ok=False,
                summary=f"dcgm level {level}: {why}",
                events=(self._check_failed(why),),
            )
        events = tuple(
            self._event(r.category, r.test, r.gpu_index, r.result, r.message, level)
            for r in results
            if r.result != "skip"
        )
        counts = {word: sum(1 for r in results if r.result == word) for word in _ORDER}
        failed = [r for r in results if r.result == "fail"]
        summary = f"dcgm level {level}: " + ", ".join(
            f"{counts[word]} {_ORDER[word]}" for word in _ORDER if counts[word]
        )
        if failed:
            first = failed[0]
            where = "the machine" if first.gpu_index < 0 else f"GPU {first.gpu_index}"
            summary += f"; {first.test} failed on {where}"
            if first.message:
                summary += f": {first.message}"
        return Diagnosis(ok=not failed, summary=summary, events=events)

    def _unavailable_diagnosis(self, why: str) -> Diagnosis:
        events: tuple[HealthEvent, ...] = ()
        if why != self._unavailable:
            events = (self._check_failed(why),)
        self._unavailable = why
        return Diagnosis(ok=False, summary=f"dcgm: {why}", events=events)

    def _check_failed(self, why: str) -> HealthEvent:
        return HealthEvent(
            type=HealthEventType.CHECK_FAILED,
            time=self._wall_clock(),
            message=why,
            details={"check": "dcgm"},
        )

    def _event(
        self, category: str, test: str, gpu: int, result: str, message: str, level: int
    ) -> HealthEvent:
        where = "the machine" if gpu < 0 else f"GPU {gpu}"
        name = test or "the diagnostic"
        text = f"DCGM {name}: {result} on {where}" + (f": {message}" if message else "")
        return HealthEvent(
            type=HealthEventType.DIAGNOSTIC,
            time=self._wall_clock(),
            gpu_index=gpu,
            message=text,
            details={
                "check": "dcgm",
                "category": category,
                "test": test,
                "result": result,
                "level": str(level),
            },
        )

    async def _run(self, level: int) -> str:
        command = [self.settings.dcgmi, "diag", "-r", str(level), "-j"]
        seconds = self.settings.timeout.total_seconds()
        try:
            done = await run_diagnostic_process(command, seconds)
        except DiagnosticTimedOut:
            raise _TimedOut(
                f"dcgmi diag -r {level} did not finish within {seconds:g}s; it was killed"
            ) from None
        except FileNotFoundError:
            raise _Unavailable(f"DCGM is not installed: {command[0]} not found") from None
        except OSError as exc:
            raise _Unavailable(f"cannot run {command[0]}: {exc}") from None
        stdout = done.stdout.decode(errors="replace")
        if "{" in stdout:
            # dcgmi exits non-zero when a test fails, and says so in its JSON.
            return stdout
        said = (done.stderr.decode(errors="replace") + stdout).strip()
        last = said.splitlines()[-1] if said else f"exited with {done.returncode}"
        if any(word in said.lower() for word in _NO_HOST_ENGINE):
            raise _Unavailable(f"DCGM's host engine (nv-hostengine) does not answer: {last}")
        raise _Unavailable(f"{command[0]} diag gave no results: {last}")


_ORDER = {"pass": "passed", "warn": "warned", "fail": "failed", "skip": "skipped"}


def parse_diag(output: str) -> list[DcgmResult]:
    """The results in `dcgmi diag -j` output, of DCGM 3.x or 4.x; raises ValueError, with one
    line, on output that holds none."""
    start, end = output.find("{"), output.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON document")
    try:
        document = json.loads(output[start : end + 1])
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ValueError("the document is not an object")
    root = document.get("DCGM Diagnostic") or document.get("DCGM GPU Diagnostic")
    if not isinstance(root, dict):
        raise ValueError('no "DCGM Diagnostic" or "DCGM GPU Diagnostic" object')
    results = list(_results(root.get("test_categories")))
    if not results:
        error = root.get("runtime_error") or document.get("runtime_error") or "no test results"
        raise ValueError(str(error)[:_MESSAGE_LIMIT])
    return results


def _results(categories: Any) -> Iterator[DcgmResult]:
    for category in _objects(categories):
        category_name = str(category.get("category", ""))
        for test in _objects(category.get("tests")):
            name = str(test.get("name", ""))
            for result in _objects(test.get("results")):
                word = _RESULTS.get(str(result.get("status", "")).strip().lower())
                if word is None:
                    continue
                message = "; ".join(_warnings(result.get("warnings")))[:_MESSAGE_LIMIT]
                for gpu in _gpus(result):
                    yield DcgmResult(
                        category=category_name,
                        test=name,
                        gpu_index=gpu,
                        result=word,
                        message=message,
                    )


def _objects(value: Any) -> Iterator[Mapping[str, Any]]:
    # DCGM 3.x writes nulls between the tests of a category.
    if isinstance(value, list):
        yield from (v for v in value if isinstance(v, dict))


def _warnings(value: Any) -> Iterator[str]:
    if not isinstance(value, list):
        return
    for warning in value:
        text = warning.get("warning", "") if isinstance(warning, dict) else warning
        if isinstance(text, str) and text.strip():
            yield " ".join(text.split())


def _gpus(result: Mapping[str, Any]) -> list[int]:
    """The GPUs a result is about: DCGM 4's entity, or DCGM 3's `gpu_ids`; [-1] for the
    machine (a test of every GPU at once, or another entity)."""
    if "entity_id" in result:
        group = str(result.get("entity_group", "GPU")).upper()
        entity = result.get("entity_id")
        if group == "GPU" and isinstance(entity, int):
            return [entity]
        return [-1]
    ids = str(result.get("gpu_ids", "")).split(",")
    gpus = [int(i) for i in (s.strip() for s in ids) if i.isdigit()]
    return gpus if len(gpus) == 1 else [-1]


class _Unavailable(Exception):
    """DCGM cannot run here: not installed, or its host engine does not answer."""


class _TimedOut(Exception):
    """The diagnostic ran past its timeout and was killed."""
