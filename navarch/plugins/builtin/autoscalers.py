"""Built-in autoscalers."""

from __future__ import annotations

from typing import Any

import attrs
from attrs import field, frozen

from navarch.config import ConfigValueError
from navarch.plugins import hookimpl
from navarch.pools.scaling import Recommendation, ScalingState


def _percent(_inst: Any, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value <= 100:
        raise ConfigValueError(f"{attribute.name}: expected a number from 0 to 100, got {value:g}")


@frozen(kw_only=True)
class ReactiveSettings:
    scale_up_at: float = field(default=80.0, validator=_percent)
    scale_down_at: float = field(default=20.0, validator=_percent)
    step: int = field(default=1)

    @scale_down_at.validator
    def _below_up(self, _attribute: attrs.Attribute, value: float) -> None:
        if value >= self.scale_up_at:
            raise ConfigValueError(
                f"scale_down_at: expected less than scale_up_at ({self.scale_up_at:g}), "
                f"got {value:g}"
            )

    @step.validator
    def _positive_step(self, _attribute: attrs.Attribute, value: int) -> None:
        if value < 1:
            raise ConfigValueError(f"step: expected at least 1, got {value}")


class ReactiveAutoscaler:
    """Adds `step` nodes above `scale_up_at` percent GPU use; removes them below `scale_down_at`.

    Comparisons are strict, so a pool sitting exactly on a threshold holds its size.
    """

    Settings = ReactiveSettings

    def __init__(self, settings: ReactiveSettings) -> None:
        self.settings = settings

    def recommend(self, state: ScalingState) -> Recommendation:
        s = self.settings
        util = state.utilization
        if util is None:
            return Recommendation(target=state.current_nodes, reason="no utilization reported")
        if util > s.scale_up_at:
            return Recommendation(
                target=state.current_nodes + s.step,
                reason=f"utilization {util:.1f}% is above {s.scale_up_at:g}%",
            )
        if util < s.scale_down_at:
            return Recommendation(
                target=state.current_nodes - s.step,
                reason=f"utilization {util:.1f}% is below {s.scale_down_at:g}%",
            )
        return Recommendation(
            target=state.current_nodes,
            reason=f"utilization {util:.1f}% is within {s.scale_down_at:g}-{s.scale_up_at:g}%",
        )


@hookimpl
def navarch_autoscalers(register: Any) -> None:
    register("reactive", ReactiveAutoscaler)
