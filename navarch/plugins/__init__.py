"""The plugin surface: everything a navarch plugin imports, and nothing else.

A plugin is a module with functions marked `@hookimpl`; each registration hook receives a
`register` callback (`register("reactive", ReactiveAutoscaler)`). The objects a plugin registers
follow the contracts below, written as `typing.Protocol`s, and take the values and raise the
errors this module exports. The built-in plugins (`navarch.plugins.builtin`) import only this
module and its submodules, as a third party's would. docs/plugins.md is the reference.

    from navarch.plugins import Recommendation, ScalingState, hookimpl

    class Fixed:
        def recommend(self, state: ScalingState) -> Recommendation:
            return Recommendation(target=3, reason="always three")

    @hookimpl
    def navarch_autoscalers(register):
        register("fixed", Fixed)

Submodules: `navarch.plugins.instance_types` (navarch's abstract instance types),
`navarch.plugins.validators` (attrs validators for settings classes) and
`navarch.plugins.telemetry` (NVML readings and the kernel log, for health checks).
"""

from navarch.clock import WallClock
from navarch.errors import ConfigValueError, NavarchError
from navarch.model import Event, GpuInfo, HealthEvent, HealthEventType, HealthStatus, NodeStatus
from navarch.plugins.autoscaler import Autoscaler, Recommendation, ScalingState, ask
from navarch.plugins.health_check import (
    DiagnosingHealthCheck,
    Diagnosis,
    GpuBackend,
    GpuEvent,
    HealthCheck,
    NodeWatch,
    ReportEvents,
    WatchingHealthCheck,
)
from navarch.plugins.hookspecs import Register, hookimpl
from navarch.plugins.instance_types import ABSTRACT_INSTANCE_TYPES, AbstractType, parse_abstract
from navarch.plugins.metrics_source import MetricsSource
from navarch.plugins.notifier import Notifier, event_document
from navarch.plugins.provider import (
    POOL_LABEL,
    AttachableProvider,
    AuthError,
    CapacityError,
    CheckedProvider,
    Instance,
    InstanceNotFound,
    InstanceState,
    InstanceType,
    InstanceTypeNames,
    Machine,
    Provider,
    ProviderCatalog,
    ProviderContext,
    ProviderError,
    ProvisionRequest,
    QuotaError,
    RebootingProvider,
    SimulatedMachine,
    TransientError,
)
from navarch.plugins.routing import NotifierSettings, kinds_setting, min_severity_setting
from navarch.plugins.selector import Candidate, Selector
from navarch.plugins.settings import PluginTable
from navarch.plugins.severity import EVENT_SEVERITIES, Severity, severity_of
from navarch.redaction import redact_url

__all__ = [
    "ABSTRACT_INSTANCE_TYPES",
    "EVENT_SEVERITIES",
    "POOL_LABEL",
    "AbstractType",
    "AttachableProvider",
    "AuthError",
    "Autoscaler",
    "Candidate",
    "CapacityError",
    "CheckedProvider",
    "ConfigValueError",
    "DiagnosingHealthCheck",
    "Diagnosis",
    "Event",
    "GpuBackend",
    "GpuEvent",
    "GpuInfo",
    "HealthCheck",
    "HealthEvent",
    "HealthEventType",
    "HealthStatus",
    "Instance",
    "InstanceNotFound",
    "InstanceState",
    "InstanceType",
    "InstanceTypeNames",
    "Machine",
    "MetricsSource",
    "NavarchError",
    "NodeStatus",
    "NodeWatch",
    "Notifier",
    "NotifierSettings",
    "PluginTable",
    "Provider",
    "ProviderCatalog",
    "ProviderContext",
    "ProviderError",
    "ProvisionRequest",
    "QuotaError",
    "RebootingProvider",
    "Recommendation",
    "Register",
    "ReportEvents",
    "ScalingState",
    "Selector",
    "Severity",
    "SimulatedMachine",
    "TransientError",
    "WallClock",
    "WatchingHealthCheck",
    "ask",
    "event_document",
    "hookimpl",
    "kinds_setting",
    "min_severity_setting",
    "parse_abstract",
    "redact_url",
    "severity_of",
]
