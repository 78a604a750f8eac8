"""The kernel log in tests: engine selection, kmsg record lines, /dev/kmsg writes, XID lines."""

from __future__ import annotations

import ctypes
import errno
import os
from types import ModuleType
from typing import Any

import pytest

from navarch.model import GpuInfo
from navarch.telemetry import _kmsg_engine, _native
from navarch.telemetry.xid import NvLink5Error, RecoveryActionChange

ENGINES = ["cffi", "python"]
BOOT = "00000000-0000-4000-8000-000000000001"


def engine_module(name: str) -> ModuleType:
    """The engine called `name`; skips the test when the C engine is not in use here."""
    if name == "python":
        from navarch.telemetry import _kmsg_python

        return _kmsg_python
    if _native.lib is None:
        disabled = os.environ.get("NAVARCH_DISABLE_NATIVE") == "1"
        if os.environ.get("NAVARCH_REQUIRE_EXTENSIONS") == "1" and not disabled:
            pytest.fail(f"navarch._telemetry is required: {_native.REASON}")
        pytest.skip(f"the C engine is not in use: {_native.REASON}")
    from navarch.telemetry import _kmsg_cffi

    return _kmsg_cffi


def use_engine(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Makes every reader and parser in the test use the engine called `name`."""
    module = engine_module(name)
    monkeypatch.setattr(_kmsg_engine, "current", lambda: module)
    return module


def record(
    seq: int,
    message: str | bytes,
    *,
    facility: int = 0,
    level: int = 4,
    ts_usec: int | None = None,
    flag: str = "-",
) -> bytes:
    """One kmsg record line as /dev/kmsg formats it, newline included."""
    if isinstance(message, str):
        message = message.encode()
    ts = 1_000_000 + seq * 1000 if ts_usec is None else ts_usec
    return b"%d,%d,%d,%s;%s\n" % (facility * 8 + level, seq, ts, flag.encode(), message)


def xid_line(code: int, detail: str = "test detail", pci: str = "PCI:0000:3b:00") -> str:
    return f"NVRM: Xid ({pci}): {code}, pid=1234, name=python3, {detail}"


def kernel_pci(bus_id: str) -> str:
    """NVML's `00000000:3B:00.0` as the driver writes it in the kernel log: `PCI:0000:3b:00`."""
    domain, bus, rest = bus_id.split(":")
    return f"PCI:{domain[-4:]}:{bus.lower()}:{rest.split('.')[0]}"


def xid_record(seq: int, gpu: GpuInfo, code: int, text: str, pid: int | None = None) -> bytes:
    """The kmsg record of an XID on `gpu`, as the driver logs it."""
    fields = f" pid={pid}, name=python3," if pid is not None else ""
    return record(seq, f"NVRM: Xid ({kernel_pci(gpu.pci_bus_id)}): {code},{fields} {text}")


def write_kmsg(line: bytes) -> None:
    """Writes one line to the real /dev/kmsg on a fresh descriptor, as the rate limit wants.

    Skips the test when this process may not write there.
    """
    try:
        fd = os.open("/dev/kmsg", os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.ENOENT):
            pytest.skip(f"cannot write /dev/kmsg: {exc.strerror}")
        raise
    try:
        os.write(fd, line)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            pytest.skip(f"cannot write /dev/kmsg: {exc.strerror}")
        raise
    finally:
        os.close(fd)


def kmsg_readable() -> bool:
    try:
        os.close(os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        return False
    return True


def kmsg_ring_size() -> int:
    """Bytes of message text the kernel's ring holds (syslog SYSLOG_ACTION_SIZE_BUFFER)."""
    size = ctypes.CDLL(None, use_errno=True).klogctl(10, None, 0)
    return size if size > 0 else 1 << 20


# (line, expected fields); every line has the shape of driver output from gpu-health.md section
# 1.3, NVIDIA's XID catalog, gpud's and NVSentinel's test data or logs posted in issues, some with
# the dmesg or journal prefix a log file adds.
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "pid and name": (
        "NVRM: Xid (PCI:0000:9b:00): 119, pid=2024380, name=nvidia-smi, Timeout after 6s of "
        "waiting for RPC response from GPU4 GSP! ...",
        dict(
            code=119,
            pci_bus_id="00000000:9B:00.0",
            pci_raw="PCI:0000:9b:00",
            pid=2024380,
            process_name="nvidia-smi",
            message="Timeout after 6s of waiting for RPC response from GPU4 GSP! ...",
        ),
    ),
    "quoted unknown pid": (
        "NVRM: Xid (PCI:0000:05:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the "
        "bus.",
        dict(code=79, pid=-1, process_name=None, message="GPU has fallen off the bus."),
    ),
    "unquoted unknown pid, quoted unknown name": (
        "NVRM: Xid (PCI:0000:cb:00): 13, pid=<unknown>, name='<unknown>', Graphics Exception",
        dict(code=13, pid=-1, process_name=None, message="Graphics Exception"),
    ),
    "no pid or name": (
        "NVRM: Xid (PCI:0000:01:00): 79, GPU has fallen off the bus.",
        dict(code=79, pid=-1, process_name=None, inferred=False),
    ),
    "pid without name": (
        "NVRM: Xid (PCI:0000:10:1c): 63, pid=1896, Row Remapper: New row marked for remapping, "
        "reset gpu to activate.",
        dict(
            code=63,
            pci_bus_id="00000000:10:1C.0",
            pid=1896,
            process_name=None,
            message="Row Remapper: New row marked for remapping, reset gpu to activate.",
        ),
    ),
    "legacy, no PCI prefix": (
        "NVRM: Xid (0000:03:00): 14, Channel 00000001",
        dict(
            code=14, pci_bus_id="00000000:03:00.0", pci_raw="0000:03:00", message="Channel 00000001"
        ),
    ),
    "legacy, register dump": (
        "NVRM: Xid (0000:01:00): 13, 0005 00000000 0000502d 00000104 00000000 00000100",
        dict(
            code=13,
            pci_bus_id="00000000:01:00.0",
            message="0005 00000000 0000502d 00000104 00000000 00000100",
        ),
    ),
    "8-digit domain": (
        "NVRM: Xid (PCI:00000000:3b:00): 48, DBE (Double Bit Error) ECC Error",
        dict(code=48, pci_bus_id="00000000:3B:00.0", pci_raw="PCI:00000000:3b:00"),
    ),
    "non-zero domain": (
        "NVRM: Xid (PCI:0018:01:00): 43, pid=12, name=a.out, Ch 00000010",
        dict(code=43, pci_bus_id="00000018:01:00.0", pid=12, process_name="a.out"),
    ),
    "dmesg prefix": (
        "[Fri Aug 30 11:43:14 2024] NVRM: Xid (PCI:0000:cb:00): 109, pid=1797828, "
        "name=pt_main_thread, Ch 00000008, errorString CTX SWITCH TIMEOUT, Info 0x58005",
        dict(
            code=109,
            pid=1797828,
            process_name="pt_main_thread",
            message="Ch 00000008, errorString CTX SWITCH TIMEOUT, Info 0x58005",
        ),
    ),
    "journal prefix": (
        "Nov 27 03:52:00 gpu-7 kernel: NVRM: Xid (PCI:0000:3b:00): 31, pid=77, name=python3, "
        "Ch 00000010, intr 10000000. MMU Fault",
        dict(code=31, pci_bus_id="00000000:3B:00.0", pid=77),
    ),
    "XID 154": (
        "NVRM: Xid (PCI:0008:01:00): 154, GPU recovery action changed from 0x4 (Drain and Reset) "
        "to 0x1 (GPU Reset Required)",
        dict(
            code=154,
            pci_bus_id="00000008:01:00.0",
            recovery_action=RecoveryActionChange(
                old=4, old_name="Drain and Reset", new=1, new_name="GPU Reset Required"
            ),
        ),
    ),
    "XID 154 from none": (
        "NVRM: Xid (PCI:0000:9b:00): 154, GPU recovery action changed from 0x0 (None) to 0x1 "
        "(GPU Reset Required)",
        dict(
            code=154,
            recovery_action=RecoveryActionChange(
                old=0, old_name="None", new=1, new_name="GPU Reset Required"
            ),
        ),
    ),
    "NVLink5 fatal": (
        "NVRM: Xid (PCI:0018:01:00): 149, NETIR_LINK_EVT Fatal XC0 i0 Link 08 (0x004505c6 "
        "0x00000000 0x00000000 0x00000000 0x00000000 0x00000000)",
        dict(
            code=149,
            pci_bus_id="00000018:01:00.0",
            nvlink5=NvLink5Error(
                unit="NETIR_LINK_EVT",
                fatal=True,
                containment=0,
                link=8,
                intrinfo=0x004505C6,
                error_status=0,
            ),
        ),
    ),
    "NVLink5 nonfatal, unit with a slash": (
        "NVRM: Xid (PCI:0000:04:00): 146, TLW_RX/TLW_RX_PIPE0 Nonfatal XC1 i0 Link 17 "
        "(0x0000000a 0x00000001 0x00000000 0x00000000)",
        dict(
            code=146,
            nvlink5=NvLink5Error(
                unit="TLW_RX/TLW_RX_PIPE0",
                fatal=False,
                containment=1,
                link=17,
                intrinfo=0xA,
                error_status=1,
            ),
        ),
    ),
    "bare code": (
        "NVRM: Xid (PCI:0000:3f:00): 46",
        dict(code=46, pci_bus_id="00000000:3F:00.0", pid=-1, process_name=None, message=""),
    ),
    "bare code, trailing blanks": (
        "[ 5012.330118] NVRM: Xid (PCI:0000:3f:00): 62 \t",
        dict(code=62, pci_bus_id="00000000:3F:00.0", message=""),
    ),
    "pid ends the line": (
        "Feb 01 14:25:31 node-3 kernel: NVRM: Xid (PCI:0000:01:00): 38, pid=1659,",
        dict(code=38, pid=1659, process_name=None, message=""),
    ),
    "pid ends the line, no comma": (
        "NVRM: Xid (PCI:0000:01:00): 38, pid=1659",
        dict(code=38, pid=1659, process_name=None, message=""),
    ),
    "name ends the line": (
        "[ 1720.336960] NVRM: Xid (PCI:0000:01:00): 109, pid=2075, name=Stray-Win64-Shi",
        dict(code=109, pid=2075, process_name="Stray-Win64-Shi", message=""),
    ),
    "unknown name ends the line": (
        "NVRM: Xid (PCI:0000:07:00): 48, pid='<unknown>', name=<unknown>,",
        dict(code=48, pid=-1, process_name=None, message=""),
    ),
    "NVLink5, link -1": (
        "NVRM: Xid (PCI:0019:01:00): 149, NETIR Fatal XC0 i0 Link -1 (0x000fe406 0x00000000 "
        "0x00000000 0x00000000 0x00000000 0x00000000)",
        dict(
            code=149,
            nvlink5=NvLink5Error(
                unit="NETIR",
                fatal=True,
                containment=0,
                link=-1,
                intrinfo=0x000FE406,
                error_status=0,
            ),
        ),
    ),
    "NVLink5, padded fields": (
        "[171167.620236] NVRM: Xid (PCI:0009:01:00): 149, NETIR_LINK_EVT  Fatal   XC0 i0 Link 01 "
        "(0x021425c6 0x00000000 0x00000000 0x00000000 0x00000000 0x00000000)",
        dict(
            code=149,
            pci_bus_id="00000009:01:00.0",
            message="NETIR_LINK_EVT  Fatal   XC0 i0 Link 01 (0x021425c6 0x00000000 0x00000000 "
            "0x00000000 0x00000000 0x00000000)",
            nvlink5=NvLink5Error(
                unit="NETIR_LINK_EVT",
                fatal=True,
                containment=0,
                link=1,
                intrinfo=0x021425C6,
                error_status=0,
            ),
        ),
    ),
    "NVLink5, unit of two words, link -1": (
        "NVRM: Xid (PCI:0000:5b:00): 150, MSE Degraded Fatal XC0 i0 Link -1 (0x00000000 "
        "0x00000000 0x00000000 0x00000000 0x00000000 0x00000000)",
        dict(
            code=150,
            nvlink5=NvLink5Error(
                unit="MSE Degraded",
                fatal=True,
                containment=0,
                link=-1,
                intrinfo=0,
                error_status=0,
            ),
        ),
    ),
    "NVLink5 after pid and name": (
        "NVRM: Xid (PCI:0018:01:00): 145, pid=876767, name=ray::WorkerDict, RLW_RXPIPE Nonfatal "
        "XC0 i0 Link 13 (0x0409a0c2 0x00000008 0x00000001 0x00000000 0x00100000 0x00000004)",
        dict(
            code=145,
            pid=876767,
            process_name="ray::WorkerDict",
            nvlink5=NvLink5Error(
                unit="RLW_RXPIPE",
                fatal=False,
                containment=0,
                link=13,
                intrinfo=0x0409A0C2,
                error_status=8,
            ),
        ),
    ),
    "fallen off the bus, no XID number": (
        "NVRM: GPU 0000:18:00.0: GPU has fallen off the bus.",
        dict(
            code=79,
            inferred=True,
            pci_bus_id="00000000:18:00.0",
            pci_raw="0000:18:00.0",
            message="GPU 0000:18:00.0: GPU has fallen off the bus.",
        ),
    ),
    "fallen off the bus, no PCI domain": (
        "NVRM: GPU 18:00.0: GPU has fallen off the bus.",
        dict(
            code=79,
            inferred=True,
            pci_bus_id="00000000:18:00.0",
            pci_raw="18:00.0",
            message="GPU 18:00.0: GPU has fallen off the bus.",
        ),
    ),
    "fallen off the bus, old drivers": (
        "NVRM: GPU at 0000:01:00.0 has fallen off the bus.",
        dict(code=79, inferred=True, pci_bus_id="00000000:01:00.0"),
    ),
    "fallen off the bus, multi-line as /dev/kmsg escapes it": (
        r"NVRM: The NVIDIA GPU 0000:18:00.0\x0aNVRM: (PCI ID: 10de:2330) installed in this "
        r"system has\x0aNVRM: fallen off the bus and is not responding to commands.",
        dict(code=79, inferred=True, pci_bus_id="00000000:18:00.0", pid=-1),
    ),
    "fallen off the bus, multi-line on one line": (
        "NVRM: The NVIDIA GPU 0000:05:00.0 installed in this system has fallen off the bus and "
        "is not responding to commands.",
        dict(code=79, inferred=True, pci_bus_id="00000000:05:00.0"),
    ),
}
