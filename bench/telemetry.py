"""CPU cost of navarch's telemetry on a GPU node, next to what nvidia-ml-py costs for the same work.

Each measurement is one function that returns a Row; main() runs them and prints one table.
CPU time is process time (every thread), divided by the number of operations.

navarch reads the values that NVML also serves as fields (ECC counters, retired pages, remapped
rows, the PCIe replay counter, NVLink states) in one nvmlDeviceGetFieldValues call per GPU. Each
navarch measurement runs twice: batched, as navarch samples, and with one call per value, as it
samples a driver without that call; the two rows show what the batch saves.

To measure on the fake libnvidia-ml with 8 GPUs (needs a C compiler):

    python bench/telemetry.py --fake-gpus 8

To measure against the installed driver, or the library named by NAVARCH_NVML_LIBRARY:

    python bench/telemetry.py

Both also measure the kernel-log reader: a backlog of 10,000 kmsg records with a few XIDs,
drained and parsed by the C engine (one call per batch) and by the pure-Python engine, and the
real /dev/kmsg ring where it is readable.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Row:
    section: str
    what: str
    cpu_us: float | None  # per operation; None when the measurement could not run
    wall_us: float | None
    operations: int
    note: str = ""


def measure(fn: Callable[[], object], seconds: float) -> tuple[float, float, int]:
    """Runs fn until about `seconds` of wall time pass; returns CPU µs, wall µs, operations."""
    fn()
    n = 1
    while True:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if wall >= seconds:
            return cpu / n * 1e6, wall / n * 1e6, n
        n = max(n * 2, int(n * seconds / max(wall, 1e-9) * 1.1))


PER_VALUE = ", one call per value"


def nvml_extension(seconds: float, batched: bool = True) -> Row:
    """One full sample through navarch._telemetry: the C call plus the GpuSample objects."""
    from navarch.telemetry import nvml

    what = "navarch, cffi extension" + ("" if batched else PER_VALUE)
    if not nvml.cffi_available():
        return Row("NVML full sample", what, None, None, 0, "extension not built")
    with nvml.open_nvml(backend="cffi", batched=batched) as session:
        cpu, wall, n = measure(session.sample, seconds)
        return Row("NVML full sample", what, cpu, wall, n, f"{session.device_count} GPUs")


def nvml_extension_c_only(seconds: float, batched: bool = True) -> Row:
    """The C call alone, into a reused buffer: what the FFI crossing and NVML itself cost."""
    from navarch.telemetry import _native, nvml

    what = "navarch, cffi extension, C call only" + ("" if batched else PER_VALUE)
    if not nvml.cffi_available():
        return Row("NVML full sample", what, None, None, 0, "extension not built")
    ffi, lib = _native.ffi, _native.lib
    with nvml.open_nvml(backend="cffi", batched=batched) as session:
        raw = session._session._handle
        count = session.device_count
        buf = ffi.new("navarch_nvml_gpu[]", max(count, 1))
        cpu, wall, n = measure(lambda: lib.navarch_nvml_sample(raw, buf, count), seconds)
        return Row("NVML full sample", what, cpu, wall, n, "no Python objects")


def nvml_ctypes(seconds: float, batched: bool = True) -> Row:
    """One full sample through navarch's pure-Python (ctypes) fallback."""
    from navarch.telemetry import nvml

    what = "navarch, ctypes fallback" + ("" if batched else PER_VALUE)
    with nvml.open_nvml(backend="python", batched=batched) as session:
        cpu, wall, n = measure(session.sample, seconds)
        return Row("NVML full sample", what, cpu, wall, n)


def nvml_pynvml(seconds: float) -> Row:
    """The same fields of every GPU read through nvidia-ml-py, NVIDIA's ctypes binding."""
    what = "nvidia-ml-py (pynvml)"
    try:
        import pynvml
    except ImportError:
        return Row("NVML full sample", what, None, None, 0, "nvidia-ml-py not installed")
    library = os.environ.get("NAVARCH_NVML_LIBRARY")
    if library:
        with pynvml.libLoadLock:
            pynvml.nvmlLib = ctypes.CDLL(library)
    pynvml.nvmlInit()
    try:
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        cpu, wall, n = measure(lambda: [_pynvml_read(pynvml, h) for h in handles], seconds)
    finally:
        pynvml.nvmlShutdown()
    return Row("NVML full sample", what, cpu, wall, n, "one call per field")


def _pynvml_read(pynvml: Any, h: Any) -> dict[str, object]:
    """What a careful nvidia-ml-py user writes to read navarch's fields: every call guarded."""
    out: dict[str, object] = {}

    def read(key: str, fn: Callable[..., object], *args: object) -> None:
        try:
            out[key] = fn(h, *args)
        except pynvml.NVMLError as exc:
            out[key] = exc

    read("name", pynvml.nvmlDeviceGetName)
    read("uuid", pynvml.nvmlDeviceGetUUID)
    read("pci", pynvml.nvmlDeviceGetPciInfo_v3)
    read("memory", pynvml.nvmlDeviceGetMemoryInfo, pynvml.nvmlMemory_v2)
    read("utilization", pynvml.nvmlDeviceGetUtilizationRates)
    read("temperature", pynvml.nvmlDeviceGetTemperatureV, pynvml.NVML_TEMPERATURE_GPU)
    read("slowdown", pynvml.nvmlDeviceGetTemperatureThreshold, 1)
    read("shutdown", pynvml.nvmlDeviceGetTemperatureThreshold, 0)
    read("power", pynvml.nvmlDeviceGetPowerUsage)
    read("power_limit", pynvml.nvmlDeviceGetEnforcedPowerLimit)
    for error_type in (0, 1):
        for counter in (0, 1):
            read(
                f"ecc{error_type}{counter}", pynvml.nvmlDeviceGetTotalEccErrors, error_type, counter
            )
    read("retired_sbe", pynvml.nvmlDeviceGetRetiredPages_v2, 0)
    read("retired_dbe", pynvml.nvmlDeviceGetRetiredPages_v2, 1)
    read("retired_pending", pynvml.nvmlDeviceGetRetiredPagesPendingStatus)
    read("remapped", pynvml.nvmlDeviceGetRemappedRows)
    links = []
    for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
        try:
            links.append(pynvml.nvmlDeviceGetNvLinkState(h, link))
        except pynvml.NVMLError as exc:
            if exc.value == pynvml.NVML_ERROR_INVALID_ARGUMENT or link == 0:
                break
            links.append(None)
    out["nvlink"] = links
    read("pcie_replay", pynvml.nvmlDeviceGetPcieReplayCounter)
    read("pcie_gen", pynvml.nvmlDeviceGetCurrPcieLinkGeneration)
    read("pcie_gen_max", pynvml.nvmlDeviceGetMaxPcieLinkGeneration)
    read("pcie_width", pynvml.nvmlDeviceGetCurrPcieLinkWidth)
    read("pcie_width_max", pynvml.nvmlDeviceGetMaxPcieLinkWidth)
    read("clocks", pynvml.nvmlDeviceGetCurrentClocksEventReasons)
    read("fields", pynvml.nvmlDeviceGetFieldValues, _PYNVML_FIELDS)
    return out


# The fields navarch reads in one nvmlDeviceGetFieldValues call: the GPU recovery action and the
# NVLink replay, recovery, CRC flit and CRC data totals.
_PYNVML_FIELDS = [230, 52, 59, 38, 45]

NVML_MEASUREMENTS: list[Callable[[float], Row]] = [
    nvml_extension,
    functools.partial(nvml_extension, batched=False),
    nvml_extension_c_only,
    functools.partial(nvml_extension_c_only, batched=False),
    nvml_ctypes,
    functools.partial(nvml_ctypes, batched=False),
    nvml_pynvml,
]


KMSG_RECORDS = 10_000
KMSG_XIDS = 5
KMSG_BASELINE = "navarch, pure-Python engine"


def kmsg_backlog_file(records: int = KMSG_RECORDS, xids: int = KMSG_XIDS) -> Path:
    """A file of kmsg records like a busy node's ring: mostly ordinary messages, some with the
    dictionary lines the kernel adds, and `xids` XID lines spread through it."""
    ordinary = [
        "usb 1-1: new high-speed USB device number 4 using xhci_hcd",
        "EXT4-fs (nvme0n1p1): mounted filesystem with ordered data mode. Quota mode: none.",
        "IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready",
        "nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid context, skipping",
        'audit: type=1400 audit(1700000000.123:42): apparmor="STATUS" operation="profile_load"',
        "NVRM: GPU at PCI:0000:3b:00: GPU-509665ad-0000-1111-2222-333344445555",
    ]
    path = Path(tempfile.mkdtemp(prefix="navarch-bench-")) / "kmsg.log"
    every = records // max(xids, 1)
    with path.open("w") as f:
        for seq in range(records):
            if xids and seq % every == every // 2:
                message = (
                    f"NVRM: Xid (PCI:0000:3b:00): 79, pid={seq}, name=python3, "
                    "GPU has fallen off the bus."
                )
            else:
                message = ordinary[seq % len(ordinary)]
            f.write(f"{4 + seq % 3},{seq},{1_000_000 + seq * 37},-,caller=T{seq % 97};{message}\n")
            if seq % 5 == 0:
                f.write(" SUBSYSTEM=pci\n DEVICE=+pci:0000:3b:00.0\n")
    return path


def _kmsg_engine(backend: str) -> Any:
    from navarch.telemetry import _native

    if backend == "cffi":
        if _native.lib is None:
            return None
        from navarch.telemetry import _kmsg_cffi

        return _kmsg_cffi
    from navarch.telemetry import _kmsg_python

    return _kmsg_python


def _drain(engine: Any, path: str, mode: int, only_xid: bool) -> int:
    """Reads the source to its end (a file) or until nothing is ready (/dev/kmsg)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        drain = engine.Drain(fd, mode)
        kept = 0
        while True:
            status, got = drain.drain(256, only_xid=only_xid)
            kept += len(got)
            if status != engine.FULL:
                return kept
    finally:
        os.close(fd)


def kmsg_measurements(seconds: float) -> list[Row]:
    """The backlog file and the live ring, each drained by both engines: XID events only (what
    the daemon asks for) and every record as a Python object."""
    path = str(kmsg_backlog_file())
    sources = [(f"kmsg backlog {KMSG_RECORDS} records", path, "MODE_STREAM")]
    if os.access("/dev/kmsg", os.R_OK):
        sources.append(("/dev/kmsg ring", "/dev/kmsg", "MODE_DEVICE"))
    rows = []
    for section, source, mode_name in sources:
        for only_xid, kept in ((True, "XID events"), (False, "all records")):
            for backend, what in (("cffi", "navarch, C engine"), ("python", KMSG_BASELINE)):
                engine = _kmsg_engine(backend)
                label = f"{section}, {kept}"
                if engine is None:
                    rows.append(Row(label, what, None, None, 0, "extension not built"))
                    continue
                work = functools.partial(
                    _drain, engine, source, getattr(engine, mode_name), only_xid
                )
                cpu, wall, n = measure(work, seconds)
                python = _kmsg_engine("python")
                total = _drain(python, source, getattr(python, mode_name), False)
                note = f"{label}: {total} records, {cpu / max(total, 1):.2f} µs CPU per record"
                rows.append(Row(label, what, cpu, wall, n, note))
    return rows


def print_table(rows: list[Row], baseline: str = "nvidia-ml-py", label: str = "pynvml") -> None:
    """One line per measurement; the ratio column says how many times less CPU than the row
    of the same section whose variant starts with `baseline`."""
    baselines = {r.section: r.cpu_us for r in rows if r.what.startswith(baseline)}
    headings = ("measurement", "variant", "CPU µs/op", "wall µs/op", "ops", f"{label} CPU ÷ this")
    table = [headings]
    for r in rows:
        base = baselines.get(r.section)
        table.append(
            (
                r.section,
                r.what,
                f"{r.cpu_us:.1f}" if r.cpu_us is not None else "-",
                f"{r.wall_us:.1f}" if r.wall_us is not None else "-",
                str(r.operations),
                f"{base / r.cpu_us:.1f}" if base and r.cpu_us else "-",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(headings))]
    for i, line in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    for r in rows:
        if r.note:
            print(f"{r.what}: {r.note}")


def build_fake_nvml(gpus: int) -> Path:
    """Builds navarch.testing's fake libnvidia-ml and points navarch and nvidia-ml-py at it, with
    `gpus` GPUs."""
    from navarch.testing import build_fake_nvml as build

    out = build(tempfile.mkdtemp(prefix="navarch-bench-"))
    os.environ["NAVARCH_NVML_LIBRARY"] = str(out)
    os.environ["FAKE_NVML_DEVICES"] = str(gpus)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--fake-gpus", type=int, metavar="N", help="use the fake libnvidia-ml with N GPUs"
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="wall time per measurement")
    args = parser.parse_args(argv)
    if args.fake_gpus is not None:
        library = build_fake_nvml(args.fake_gpus)
        print(f"library: fake libnvidia-ml with {args.fake_gpus} GPUs ({library})")
    else:
        print(f"library: {os.environ.get('NAVARCH_NVML_LIBRARY') or 'libnvidia-ml.so.1 (driver)'}")

    from navarch.telemetry import _native, nvml

    backend = f"{_native.BACKEND} {_native.REASON}".rstrip()
    print(f"python {sys.version.split()[0]}, default backend {backend}")
    try:
        nvml.open_nvml(backend="python").close()
        usable = True
    except nvml.NVMLError as exc:
        print(f"NVML is not usable here: {exc}")
        usable = False

    if usable:
        rows = [m(args.seconds) for m in NVML_MEASUREMENTS]
        print()
        print_table(rows)
    print()
    print_table(kmsg_measurements(args.seconds), baseline=KMSG_BASELINE, label="Python")
    return 0 if usable else 1


if __name__ == "__main__":
    sys.exit(main())
