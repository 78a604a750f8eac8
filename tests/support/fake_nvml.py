"""The fake libnvidia-ml of navarch.testing as fixtures, for the telemetry, daemon and fleet
tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from navarch import testing
from navarch.telemetry import nvml
from navarch.testing import FakeNvml


@pytest.fixture(scope="session")
def build_fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Builds the fake libnvidia-ml of navarch.testing, once per set of defines."""
    built: dict[tuple[str, ...], Path] = {}

    def build(*defines: str) -> Path:
        if defines not in built:
            try:
                built[defines] = testing.build_fake_nvml(
                    tmp_path_factory.mktemp("fake-nvml"), *defines
                )
            except testing.CompilerNotFound as exc:
                pytest.skip(str(exc))
        return built[defines]

    return build


@pytest.fixture
def make_fake_nvml(
    build_fake_nvml: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., FakeNvml]:
    """Builds a variant of the fake, points NAVARCH_NVML_LIBRARY at it and gives 2 devices."""

    def make(*defines: str) -> FakeNvml:
        fake = FakeNvml(build_fake_nvml(*defines))
        fake.reset(2)
        monkeypatch.setenv(nvml.LIBRARY_ENV, str(fake.path))
        return fake

    return make


@pytest.fixture
def fake_nvml(make_fake_nvml: Callable[..., FakeNvml]) -> FakeNvml:
    return make_fake_nvml()


@pytest.fixture(params=["cffi", "python"])
def backend(request: pytest.FixtureRequest) -> nvml.Backend:
    """Runs a test once per NVML backend that this build and environment offer."""
    if request.param == "cffi" and not nvml.cffi_available():
        required = os.environ.get("NAVARCH_REQUIRE_EXTENSIONS") == "1"
        if required and os.environ.get("NAVARCH_DISABLE_NATIVE") != "1":
            pytest.fail("navarch._telemetry is required but not built")
        pytest.skip("navarch._telemetry is not in use here")
    return request.param


@pytest.fixture
def open_fake(fake_nvml: FakeNvml, backend: nvml.Backend) -> Iterator[Callable[[], nvml.Nvml]]:
    """Opens NVML sessions on the fake with the test's backend, and closes them afterwards."""
    sessions: list[nvml.Nvml] = []

    def open_() -> nvml.Nvml:
        sessions.append(nvml.open_nvml(backend=backend))
        return sessions[-1]

    yield open_
    for session in sessions:
        session.close()
