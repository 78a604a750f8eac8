"""The built-in health checks of the node daemon: `gpu`, `boot`, `xid`, `infiniband`,
`nvswitch`, `fabricmanager`, `dcgm` and `nccl`.

- `gpu` reads one sample of every GPU each health-check interval: temperatures against the GPU's
  own thresholds, ECC counters, remapped rows, retired pages, NVLink links, PCIe replays, clock
  event reasons, lost GPUs and queries that failed.
- `boot` checks that the machine has the GPUs it should.
- `xid` streams XIDs as they happen, from NVML's events and from the kernel log (/dev/kmsg),
  and reports an XID that both sources saw once, as the kernel log wrote it.
- `infiniband` reads the InfiniBand ports in sysfs: state, rate and error counters.
- `nvswitch` streams NVSwitch errors (SXids) from the kernel log.
- `fabricmanager` checks that NVIDIA's fabric manager service runs on an NVSwitch machine.
- `dcgm` runs DCGM's diagnostics (`dcgmi diag`) when the control plane asks, not every interval.
- `nccl` runs an NCCL all-reduce benchmark when the control plane asks, and checks its bus
  bandwidth.

Every event uses the types, metric names and detail names that the default health policy reads
(docs/health.md). trio and the telemetry modules are imported when a check runs, not when the
plugin loads, so that `navarch --help` stays fast.
"""

from __future__ import annotations

from navarch.plugins import Register, hookimpl
from navarch.plugins.builtin.health_checks.boot import BootCheck, BootCheckSettings
from navarch.plugins.builtin.health_checks.dcgm import DcgmCheck, DcgmCheckSettings
from navarch.plugins.builtin.health_checks.fabricmanager import (
    FabricManagerCheck,
    FabricManagerCheckSettings,
)
from navarch.plugins.builtin.health_checks.gpu import GpuCheck, GpuCheckSettings
from navarch.plugins.builtin.health_checks.infiniband import (
    InfinibandCheck,
    InfinibandCheckSettings,
)
from navarch.plugins.builtin.health_checks.nccl import NcclCheck, NcclCheckSettings
from navarch.plugins.builtin.health_checks.nvswitch import NvswitchCheck, NvswitchCheckSettings
from navarch.plugins.builtin.health_checks.xid import KMSG_POSITION_FILE, XidCheck, XidCheckSettings

__all__ = [
    "KMSG_POSITION_FILE",
    "BootCheck",
    "BootCheckSettings",
    "DcgmCheck",
    "DcgmCheckSettings",
    "FabricManagerCheck",
    "FabricManagerCheckSettings",
    "GpuCheck",
    "GpuCheckSettings",
    "InfinibandCheck",
    "InfinibandCheckSettings",
    "NcclCheck",
    "NcclCheckSettings",
    "NvswitchCheck",
    "NvswitchCheckSettings",
    "XidCheck",
    "XidCheckSettings",
]


@hookimpl
def navarch_health_checks(register: Register) -> None:
    register("gpu", GpuCheck)
    register("boot", BootCheck)
    register("xid", XidCheck)
    register("infiniband", InfinibandCheck)
    register("nvswitch", NvswitchCheck)
    register("fabricmanager", FabricManagerCheck)
    register("dcgm", DcgmCheck)
    register("nccl", NcclCheck)
