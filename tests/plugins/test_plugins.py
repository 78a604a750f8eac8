from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from navarch.plugins import Autoscaler, hookimpl
from navarch.plugins import manager as manager_module
from navarch.plugins.manager import load_plugins

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "local-fleet.toml"

GOOD_PLUGIN = """
from attrs import frozen
from navarch.plugins import hookimpl
from navarch.plugins import Recommendation


class AcmeProvider:
    @frozen(kw_only=True)
    class Settings:
        region: str = "moon-1"

    def __init__(self, settings):
        self.settings = settings


class AlwaysThree:
    def recommend(self, state):
        return Recommendation(target=3, reason="always three")


@hookimpl
def navarch_providers(register):
    register("acme", AcmeProvider)


@hookimpl
def navarch_autoscalers(register):
    register("always-three", AlwaysThree)
"""


def install_distribution(site: Path, dist: str, version: str, module: str, source: str) -> None:
    """Lays out a distribution the way `pip install` leaves it: a module and its dist-info."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[navarch]\n{module} = {module}\n")
    (info / "RECORD").write_text("")


@pytest.fixture
def site(tmp_path) -> Path:
    return tmp_path / "site-packages"


def plugin_table(navarch, site: Path) -> dict[str, dict]:
    result = navarch("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)}


def test_builtin_plugins_are_listed(navarch, site):
    site.mkdir()
    rows = plugin_table(navarch, site)
    assert rows["fake_provider"]["registered"] == ["provider:fake"]
    assert rows["autoscalers"]["distribution"] == "navarch"
    assert rows["selectors"]["registered"] == [
        "selector:priority",
        "selector:round-robin",
        "selector:cost",
        "selector:availability",
    ]


def test_installed_third_party_plugin_is_discovered(navarch, site, tmp_path):
    install_distribution(site, "navarch-acme", "1.2.3", "navarch_acme", GOOD_PLUGIN)
    rows = plugin_table(navarch, site)
    acme = rows["navarch_acme"]
    assert acme["distribution"] == "navarch-acme"
    assert acme["version"] == "1.2.3"
    assert acme["builtin"] is False
    assert acme["registered"] == ["provider:acme", "autoscaler:always-three"]
    assert acme["error"] is None

    table = navarch("plugins", env={"PYTHONPATH": str(site)})
    assert "autoscaler:always-three" in table.stdout

    config = tmp_path / "acme.toml"
    config.write_text(
        textwrap.dedent(
            """
            [providers.moon]
            type = "acme"
            regin = "x"
            """
        )
    )
    result = navarch("config", "check", str(config), env={"PYTHONPATH": str(site)})
    assert result.returncode == 2
    assert "providers.moon.regin: unknown key (did you mean 'region'?)" in result.stderr


def test_plugin_that_fails_to_import_is_reported_and_the_rest_works(navarch, site):
    install_distribution(
        site, "navarch-broken", "0.1", "navarch_broken", "raise RuntimeError('no credentials')\n"
    )
    rows = plugin_table(navarch, site)
    broken = rows["navarch_broken"]
    assert broken["distribution"] == "navarch-broken"
    assert broken["error"] == "import failed: RuntimeError: no credentials"
    assert rows["fake_provider"]["error"] is None

    result = navarch("config", "check", str(EXAMPLE), env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert "navarch_broken" in result.stderr and "navarch-broken" in result.stderr


def test_second_registration_of_a_name_is_refused_naming_both_plugins(navarch, site):
    install_distribution(
        site,
        "navarch-clash",
        "2.0",
        "navarch_clash",
        """
        from navarch.plugins import hookimpl

        @hookimpl
        def navarch_providers(register):
            register("fake", object)
        """,
    )
    rows = plugin_table(navarch, site)
    assert rows["navarch_clash"]["error"] == (
        'provider "fake" is registered by both plugin "fake_provider" and plugin '
        '"navarch_clash"; uninstall or disable one of them'
    )
    assert rows["navarch_clash"]["registered"] == []


def test_misspelled_hook_is_reported():
    class Typo:
        @hookimpl
        def navarch_provider(self, register):
            register("x", object)

    plugins = load_plugins(entry_points=False, extra={"typo": Typo()})
    [broken] = plugins.broken()
    assert broken.name == "typo"
    assert "navarch_provider" in broken.error
    assert "x" not in plugins.registry("provider")


def test_autoload_can_be_switched_off(navarch, site):
    install_distribution(site, "navarch-acme", "1.2.3", "navarch_acme", GOOD_PLUGIN)
    result = navarch(
        "plugins",
        "--json",
        env={"PYTHONPATH": str(site), "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert "navarch_acme" not in {row["name"] for row in json.loads(result.stdout)}


def test_plugin_settings_are_built_from_the_table():
    plugins = load_plugins(entry_points=False)
    registration = plugins.get("autoscaler", "reactive")
    problems: list[str] = []
    settings = registration.structure_settings({"scale_up_at": 70}, "pools.p.autoscaler", problems)
    assert problems == []
    scaler = registration.create(Autoscaler, settings)
    assert scaler.settings.scale_up_at == 70


def test_documented_example_plugin_works(navarch, site):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
    section = docs.split("## Write and package a plugin", 1)[1]
    source = section.split("```python\n", 1)[1].split("```", 1)[0]
    install_distribution(site, "navarch-weekday", "1.0.0", "navarch_weekday", source)
    rows = plugin_table(navarch, site)
    assert rows["navarch_weekday"]["registered"] == ["autoscaler:weekday"]
    assert rows["navarch_weekday"]["error"] is None


def test_a_command_loads_the_plugins_once(tmp_path, monkeypatch, capsys):
    """Adding plugin commands and reading the configuration share one load of the plugins."""
    from navarch.cli import main
    from navarch.plugins import manager

    loads = []
    original = manager.load_plugins

    def counted(**kwargs):
        loads.append(kwargs)
        return original(entry_points=False)

    monkeypatch.setattr(manager, "load_plugins", counted)
    manager.installed_plugins.cache_clear()
    config = tmp_path / "navarch.toml"
    config.write_text(
        '[providers.fake]\n[pools.p]\ninstance_type = "h100-8x"\n'
        'providers = [{ provider = "fake" }]\n'
    )
    try:
        main(["config", "check", str(config)])
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        manager.installed_plugins.cache_clear()
    assert len(loads) == 1
    assert "pools: p" in capsys.readouterr().out


@pytest.mark.parametrize("module_name", sorted(manager_module.BUILTIN_PLUGINS))
def test_each_builtin_plugin_registers_the_kinds_it_is_listed_with(module_name):
    module = importlib.import_module(module_name)
    hooks = {name for name, value in vars(module).items() if hasattr(value, "navarch_impl")}
    kinds = manager_module.BUILTIN_PLUGINS[module_name]
    assert hooks == {manager_module.KINDS[kind] for kind in kinds}


def test_a_process_that_uses_health_checks_imports_no_other_builtin_plugin():
    """What `navarch daemon` loads: the health checks, not the providers or notifiers."""
    script = """
import sys
from navarch.daemon.checks import load_health_checks
from navarch.daemon.config import DaemonConfig
from navarch.plugins.manager import installed_plugins

plugins = installed_plugins()
assert plugins.broken("health_check") == []
checks = load_health_checks(plugins, DaemonConfig())
print(len(checks))
print(*sorted(m for m in sys.modules if m.startswith("navarch.plugins.builtin.")))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "NAVARCH_DISABLE_PLUGIN_AUTOLOAD": "1"},
        check=True,
    )
    count, modules = result.stdout.splitlines()
    assert int(count) == 8
    assert {m.split(".")[3] for m in modules.split()} == {"health_checks"}


class _ChecksAndScalers:
    """Registers a name a built-in already has, before that built-in is imported."""

    @hookimpl
    def navarch_health_checks(self, register):
        register("power", object)
        register("xid", object)

    @hookimpl
    def navarch_autoscalers(self, register):
        register("steady", object)


def test_a_builtin_keeps_its_name_whenever_it_is_imported():
    plugins = load_plugins(entry_points=False, extra={"clash": _ChecksAndScalers()})
    registry = plugins.registry("health_check")
    assert registry["xid"].plugin == "health_checks"
    assert "power" in registry
    [broken] = plugins.broken("health_check")
    assert broken.error == (
        'health_check "xid" is registered by both plugin "health_checks" and plugin "clash"; '
        "uninstall or disable one of them"
    )
    rows = {info.name: info.registered for info in plugins}
    assert rows["clash"] == ["autoscaler:steady", "health_check:power"]
    assert "health_check:xid" in rows["health_checks"]


FAULTY_PLUGINS = """
from navarch.plugins import NavarchError, hookimpl


class NeedsToken:
    def __init__(self):
        raise NavarchError("providers.moon: set ACME_TOKEN to the account's API token")


class Crashes:
    def __init__(self):
        raise KeyError("ACME_TOKEN")


class Incomplete:
    async def list(self):
        return []


@hookimpl
def navarch_providers(register):
    register("needs-token", NeedsToken)
    register("crashes", Crashes)
    register("incomplete", Incomplete)
"""


@pytest.mark.parametrize(
    ("provider_type", "message"),
    [
        ("needs-token", "providers.moon: set ACME_TOKEN to the account's API token"),
        (
            "crashes",
            'providers.moon: the provider plugin "crashes" could not start: KeyError: '
            "'ACME_TOKEN' (plugin 'navarch_faulty'; fix or update it, or remove its table)",
        ),
        (
            "incomplete",
            'providers.moon: the provider plugin "incomplete" made an object (Incomplete) without '
            "provision, terminate, which a Provider must have (plugin 'navarch_faulty'; fix or "
            "update it, or remove its table)",
        ),
    ],
)
def test_a_plugin_that_cannot_make_its_object_stops_the_control_plane_with_one_line(
    navarch, site, tmp_path, provider_type, message
):
    install_distribution(site, "navarch-faulty", "0.1", "navarch_faulty", FAULTY_PLUGINS)
    config = tmp_path / "navarch.toml"
    config.write_text(
        f'[providers.moon]\ntype = "{provider_type}"\n'
        '[pools.p]\ninstance_type = "h100-8x"\nproviders = [{ provider = "moon" }]\n'
    )
    result = navarch(
        "control-plane",
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        str(tmp_path / "data"),
        env={"PYTHONPATH": str(site)},
    )
    assert result.returncode != 0
    assert result.stderr.splitlines() == [f"navarch: {message}"]
