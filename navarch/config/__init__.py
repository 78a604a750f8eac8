"""navarch.toml: TOML parsed into frozen attrs classes through cattrs, with path-qualified errors.

Every problem is reported at once, each as `FILE: KEY.PATH: what was expected, what was found`.
Plugin-owned tables (a provider's parameters, an autoscaler's thresholds) are structured with the
class the plugin registered, through the same converter, so their errors carry the full key path.
"""

from __future__ import annotations

from navarch.config.checks import bootstrap_method, tls_server_context
from navarch.config.load import (
    config_from_data,
    effective_dict,
    load_config,
    parse_config,
    read_config,
)
from navarch.config.tables import (
    AuthConfig,
    BootstrapConfig,
    Config,
    HAConfig,
    HealthConfig,
    MetricsConfig,
    PoolBootstrapConfig,
    PoolConfig,
    PoolHealthConfig,
    PoolPreflightConfig,
    PoolProviderEntry,
    PoolScalingConfig,
    ScaleDownConfig,
    ScaleUpConfig,
    ScalingPolicy,
    ServerConfig,
    StoreConfig,
    default_config,
)
from navarch.plugins.settings import PluginTable

__all__ = [
    "AuthConfig",
    "BootstrapConfig",
    "Config",
    "HAConfig",
    "HealthConfig",
    "MetricsConfig",
    "PluginTable",
    "PoolBootstrapConfig",
    "PoolConfig",
    "PoolHealthConfig",
    "PoolPreflightConfig",
    "PoolProviderEntry",
    "PoolScalingConfig",
    "ScaleDownConfig",
    "ScaleUpConfig",
    "ScalingPolicy",
    "ServerConfig",
    "StoreConfig",
    "bootstrap_method",
    "config_from_data",
    "default_config",
    "effective_dict",
    "load_config",
    "parse_config",
    "read_config",
    "tls_server_context",
]
