"""The plugin reference's examples work as written: docs/plugins.md."""

from __future__ import annotations

import re
import textwrap
import types
from pathlib import Path

import pytest

import navarch.testing  # noqa: F401
from navarch.plugins import Candidate, ProvisionRequest, Selector
from navarch.plugins.manager import load_plugins

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
EXAMPLE = Path(__file__).resolve().parent / "example_provider"

# The examples run in pytester's in-process sessions, which unload the modules they import;
# navarch.testing is imported above so that its modules, and the CEL binding of the health
# policy, which loads once per process, stay loaded.
pytest_plugins = ["pytester"]


def section(title: str) -> str:
    """The text under a heading, up to the next heading of the same or a higher level."""
    lines: list[str] = []
    level = 0
    fenced = False
    for line in DOCS.read_text().splitlines(keepends=True):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        heading = re.match(r"(#+) (.*)", line) if not fenced else None
        if heading and level and len(heading.group(1)) <= level:
            break
        if level:
            lines.append(line)
        elif heading and heading.group(2) == title:
            level = len(heading.group(1))
    assert level, f"no heading {title!r} in {DOCS}"
    return "".join(lines)


def blocks(text: str, language: str) -> list[str]:
    return [textwrap.dedent(b) for b in re.findall(rf"```{language}\n(.*?)```", text, re.S)]


def provider_example() -> tuple[str, str, str]:
    """The complete provider's module and pyproject.toml, and the contract test that runs it."""
    [module] = blocks(section("A complete provider"), "python")
    pyproject = blocks(section("A complete provider"), "toml")[0]
    [test] = blocks(section("Test a provider with the contract suite"), "python")
    return module, pyproject, test


def test_the_complete_provider_is_the_example_distribution():
    module, pyproject, test = provider_example()
    assert module == (EXAMPLE / "src" / "navarch_example" / "__init__.py").read_text()
    assert pyproject == (EXAMPLE / "pyproject.toml").read_text()
    assert test == (EXAMPLE / "tests" / "test_contract.py").read_text()


def test_the_complete_provider_keeps_the_contract(pytester):
    module, _, test = provider_example()
    pytester.makepyfile(
        navarch_example=module,
        test_contract=test,
        fake_cloud=(EXAMPLE / "tests" / "fake_cloud.py").read_text(),
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=11, skipped=2)


def test_the_health_check_example_runs_on_the_fake_libnvidia_ml(pytester):
    module, test = blocks(section("Test a health check on the fake libnvidia-ml"), "python")
    pytester.makepyfile(navarch_power_draw=module, test_power_draw=test)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")
    if "no C compiler" in result.stdout.str():
        pytest.skip("no C compiler to build the fake libnvidia-ml")
    result.assert_outcomes(passed=1)


def test_the_control_plane_example_runs(pytester):
    [example] = blocks(section("A control plane in the test"), "python")
    pytester.makepyfile(test_pool=example)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_selector_example_tries_the_home_region_first():
    [source] = blocks(section("Selectors"), "python")
    module = types.ModuleType("navarch_home_region")
    exec(compile(source, "plugins.md", "exec"), module.__dict__)
    plugins = load_plugins(entry_points=False, extra={"home-region": module})
    registration = plugins.get("selector", "home-region")
    selector = registration.create(Selector, registration.settings_class(region="west"))
    candidates = [
        Candidate(provider="a", provider_type="fake", instance_type="x", region=r, priority=p)
        for r, p in [("east", 0), ("west", 2), ("east", 1), ("west", 1)]
    ]
    ordered = selector.order(candidates, ProvisionRequest(name="p", instance_type="x"))
    assert [(c.region, c.priority) for c in ordered] == [
        ("west", 1),
        ("west", 2),
        ("east", 0),
        ("east", 1),
    ]


@pytest.mark.parametrize("source", blocks(DOCS.read_text(), "python"))
def test_every_python_example_compiles(source):
    compile(source, "plugins.md", "exec")
