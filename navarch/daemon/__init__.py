"""The node agent: one `Daemon` per GPU machine, over HTTP or in process."""

from navarch.daemon.agent import Daemon, DaemonError
from navarch.daemon.config import DaemonConfig, load_daemon_config
from navarch.daemon.drain import DrainAction, DrainOutcome, NothingToDrain, ShellDrain
from navarch.daemon.gpu import NvmlGpus, SimulatedGpus
from navarch.daemon.host import FixedHostStats, HostStats, ProcHostStats
from navarch.daemon.recovery import RebootAction, RecoveryOutcome, ShellReboot
from navarch.daemon.state import DaemonState

__all__ = [
    "Daemon",
    "DaemonConfig",
    "DaemonError",
    "DaemonState",
    "DrainAction",
    "DrainOutcome",
    "FixedHostStats",
    "HostStats",
    "NothingToDrain",
    "NvmlGpus",
    "ProcHostStats",
    "RebootAction",
    "RecoveryOutcome",
    "ShellDrain",
    "ShellReboot",
    "SimulatedGpus",
    "load_daemon_config",
]
