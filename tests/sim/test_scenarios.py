"""Every shipped scenario passes when run through the real CLI.

Stress scenarios run at a reduced size through `--set` overrides, so the file stays fast. A
scenario added without an entry here runs as written.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

# At 150 nodes the stress scenarios' failure rates would give a failure or two, so the reduced
# runs raise them, with more faults that end in a replacement.
OVERRIDES = {
    "stress-1000": [
        "fleet_gen.total_nodes=150",
        "config.pools.train.min_nodes=150",
        "config.pools.train.max_nodes=170",
        "events.1.min=150",
        "duration=6m",
        "assertions.0.min=140",
        "chaos.failure_rate=15",
        "chaos.failure_types.gpu_lost=40",
    ],
    "stress-5000": [
        "fleet_gen.total_nodes=150",
        "config.pools.fleet.min_nodes=150",
        "config.pools.fleet.max_nodes=170",
        "events.1.min=150",
        "duration=10m",
        "assertions.0.min=135",
        "assertions.2.min=1",
    ],
    "stress-10000": [
        "fleet_gen.total_nodes=150",
        "config.pools.fleet.min_nodes=150",
        "config.pools.fleet.max_nodes=170",
        "events.1.min=150",
        "duration=20m",
        "assertions.0.min=135",
        "assertions.2.min=1",
        "chaos.failure_rate=15",
    ],
}


def _scenarios() -> list[Path]:
    return sorted(SCENARIOS.glob("*.toml"))


def test_every_override_names_a_shipped_scenario():
    assert set(OVERRIDES) <= {path.stem for path in _scenarios()}


@pytest.mark.parametrize("path", _scenarios(), ids=lambda path: path.stem)
def test_scenario_passes(path: Path, tmp_path: Path):
    sets = [arg for override in OVERRIDES.get(path.stem, []) for arg in ("--set", override)]
    command = [sys.executable, "-m", "navarch", "sim", "run", str(path), "--report", str(tmp_path)]

    result = subprocess.run(
        [*command, *sets], capture_output=True, text=True, timeout=120, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True
    assert report["assertions"]
    assert all(a["passed"] for a in report["assertions"])
