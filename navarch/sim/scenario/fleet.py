"""The machines a scenario runs: listed one by one, generated from templates, and how they start."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs
from attrs import field, frozen

from navarch.errors import ConfigValueError
from navarch.sim.scenario import validators

STARTUP_PATTERNS = ("instant", "linear", "exponential", "wave")
DEFAULT_GPU_TYPE = "NVIDIA H100 80GB HBM3"


@frozen(kw_only=True)
class NodeSpec:
    """One simulated machine: where it is and what it has."""

    id: str
    provider: str = "sim"
    region: str = "local"
    zone: str = "local-a"
    rack: str = ""
    instance_type: str = "sim-8x"
    gpu_count: int = field(default=8, validator=validators.at_least(1))
    gpu_type: str = DEFAULT_GPU_TYPE
    pool: str = ""
    labels: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class Template:
    name: str
    weight: float = field(default=1.0, validator=validators.at_least(0))
    gpu_count: int = field(default=8, validator=validators.at_least(1))
    gpu_type: str = DEFAULT_GPU_TYPE
    instance_type: str = ""
    labels: dict[str, str] = field(factory=dict)


@frozen(kw_only=True)
class FleetGen:
    """A fleet made from weighted templates, providers, regions and zones."""

    total_nodes: int = field(validator=validators.at_least(1))
    templates: tuple[Template, ...] = field()
    providers: dict[str, float] = field(factory=lambda: {"sim": 1.0}, validator=validators.weights)
    regions: dict[str, float] = field(factory=lambda: {"local": 1.0}, validator=validators.weights)
    # Zones of each region; a region not listed has zones REGION-a, REGION-b and REGION-c.
    zones: dict[str, tuple[str, ...]] = field(factory=dict)
    # Machines per rack: a rack is the unit a cascade with scope "rack" stays in.
    rack_size: int = field(default=16, validator=validators.at_least(1))
    pool: str = ""
    # Generated ids are PREFIX-00001, PREFIX-00002, ...
    id_prefix: str = "node"

    @templates.validator
    def _some(self, _attribute: attrs.Attribute[Any], value: tuple[Template, ...]) -> None:
        if not value:
            raise ConfigValueError("templates: expected at least one template")


@frozen(kw_only=True)
class Startup:
    """How `start_fleet` brings the machines up."""

    pattern: str = field(default="instant", validator=validators.one_of(STARTUP_PATTERNS))
    # Over how long the machines start (not used by "instant").
    duration: timedelta = timedelta(minutes=1)
    # Machines per wave ("wave" only).
    batch_size: int = field(default=100, validator=validators.at_least(1))
    jitter_percent: float = field(default=0.0, validator=validators.at_least(0))


def generate_fleet(gen: FleetGen, rng: random.Random) -> list[NodeSpec]:
    """The fleet `gen` describes; the same generator state gives the same fleet."""

    def pick(weights: Mapping[str, float]) -> str:
        names = sorted(weights)
        return rng.choices(names, weights=[weights[n] for n in names])[0]

    templates = {t.name: t for t in gen.templates}
    template_weights = {t.name: t.weight for t in gen.templates}
    specs = []
    in_rack: dict[str, int] = {}
    for index in range(1, gen.total_nodes + 1):
        template = templates[pick(template_weights)]
        provider = pick(gen.providers)
        region = pick(gen.regions)
        zones = gen.zones.get(region) or tuple(f"{region}-{s}" for s in "abc")
        zone = zones[rng.randrange(len(zones))]
        # Machines fill a zone's racks in order, as a data hall does.
        placed = in_rack.get(zone, 0)
        in_rack[zone] = placed + 1
        rack = f"{zone}-r{placed // gen.rack_size + 1:03d}"
        specs.append(
            NodeSpec(
                id=f"{gen.id_prefix}-{index:05d}",
                provider=provider,
                region=region,
                zone=zone,
                rack=rack,
                instance_type=template.instance_type or f"{template.name}-{template.gpu_count}x",
                gpu_count=template.gpu_count,
                gpu_type=template.gpu_type,
                pool=gen.pool,
                labels={**template.labels, "navarch.io/template": template.name},
            )
        )
    return specs
