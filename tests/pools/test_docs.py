"""The pool documentation's examples work as written."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from navarch.config import parse_config
from navarch.plugins import Autoscaler, MetricsSource, Selector, hookimpl
from navarch.plugins.manager import load_plugins

DOCS = Path(__file__).resolve().parents[2] / "docs"


def code_blocks(text: str, language: str) -> list[str]:
    return [textwrap.dedent(b) for b in re.findall(rf"```{language}\n(.*?)```", text, re.S)]


def install(site: Path, dist: str, module: str, source: str) -> None:
    """Lays out a distribution the way `pip install` leaves it: a module and its dist-info."""
    site.mkdir(exist_ok=True)
    (site / f"{module}.py").write_text(source)
    info = site / f"{dist.replace('-', '_')}-1.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0.0\n")
    (info / "entry_points.txt").write_text(f"[navarch]\n{module} = {module}\n")
    (info / "RECORD").write_text("")


def test_write_your_own_autoscaler_example_works(navarch, tmp_path, monkeypatch):
    section = (DOCS / "plugins.md").read_text().split("## Write your own autoscaler", 1)[1]
    module, check = code_blocks(section, "python")[:2]
    [table] = code_blocks(section, "toml")
    site = tmp_path / "site-packages"
    install(site, "navarch-headroom", "navarch_headroom", module)
    env = {"PYTHONPATH": str(site)}

    listed = navarch("plugins", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["navarch_headroom"]["registered"] == ["autoscaler:headroom"]
    assert rows["navarch_headroom"]["error"] is None

    config = tmp_path / "navarch.toml"
    base = '[providers.fake]\n[pools.train]\ninstance_type = "h100-8x"\nmax_nodes = 8\n'
    base += '[[pools.train.providers]]\nprovider = "fake"\n'
    config.write_text(base + table)
    assert navarch("config", "check", str(config), env=env).returncode == 0
    config.write_text(base + table.replace("spare_nodes = 2", "spare_nodes = -1"))
    result = navarch("config", "check", str(config), env=env)
    assert result.returncode == 2
    assert (
        f"{config}: pools.train.autoscaler.spare_nodes: expected at least 0, got -1"
        in result.stderr
    )

    monkeypatch.syspath_prepend(str(site))
    exec(compile(check, "plugins.md", "exec"), {})


class _SpotCloud:
    supports_spot = True


class DocProviders:
    """Stand-ins for the cloud provider plugins that the examples name."""

    @hookimpl
    def navarch_providers(self, register):
        register("lambda", object)
        register("gcp", _SpotCloud)
        register("aws", _SpotCloud)


def pool_examples() -> list[str]:
    blocks = code_blocks((DOCS / "pools.md").read_text(), "toml")
    return [b for b in blocks if "[daemon" not in b]


@pytest.mark.parametrize("block", pool_examples())
def test_pool_examples_are_valid_configuration(block):
    plugins = load_plugins(entry_points=False, extra={"doc-providers": DocProviders()})
    prelude = "".join(
        f'[providers.{name}]\ntype = "{name}"\n'
        for name in ("fake", "lambda", "gcp", "aws")
        if f"[providers.{name}]" not in block
    )
    named = set(re.findall(r"\[\[?pools\.([a-z]+)", block))
    defined = set(re.findall(r"^\[pools\.([a-z]+)\]$", block, re.M))
    for pool in sorted(named - defined):
        prelude += f'[pools.{pool}]\ninstance_type = "h100-8x"\nmax_nodes = 20\n'
        prelude += f'[[pools.{pool}.providers]]\nprovider = "fake"\n'
    config = parse_config(prelude + block, "pools.md", plugins)
    for pool in config.pools.values():
        if pool.autoscaler is not None:
            pool.autoscaler.create(Autoscaler)
        if pool.metrics is not None:
            pool.metrics.create(MetricsSource)
        pool.selector.create(Selector)
