#!/usr/bin/env bash
# Checks navarch's NVML telemetry against a real NVIDIA driver, in about a minute:
#   1. builds navarch._telemetry in place (python build.py),
#   2. prints `navarch gpus`, and compares navarch's samples (both backends) field by field with
#      nvidia-smi and with nvidia-ml-py, and the batched samples (one nvmlDeviceGetFieldValues
#      call per GPU) with samples read one call per value,
#   3. registers NVML events on every GPU and waits a second for any,
#   4. runs bench/telemetry.py against the driver.
# Run it from anywhere; it works in the repository that holds it. Wheels in .whl/ (cffi,
# setuptools, pycparser, attrs, trio, click, rich, nvidia-ml-py and their dependencies) are
# installed into /tmp/navarch-site without touching the network. Everything printed also goes to
# $OUT/device.log; nvidia-smi -q goes to $OUT/nvidia-smi-q.txt.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
exec > >(tee "$OUT/device.log") 2>&1
PY=${PYTHON:-python3}

section() { printf '\n== %s\n' "$*"; }

section machine
uname -srm
$PY --version
command -v nvidia-smi >/dev/null && nvidia-smi -L && nvidia-smi -q > "$OUT/nvidia-smi-q.txt"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=driver_version --format=csv,noheader
cc --version 2>/dev/null | head -1 || echo "no C compiler"
echo "NAVARCH_NVML_LIBRARY=${NAVARCH_NVML_LIBRARY:-unset, so libnvidia-ml.so.1 of the driver}"

section "python packages"
site=/tmp/navarch-site
if compgen -G ".whl/*.whl" >/dev/null; then
    # One wheel at a time, so that one built for another Python does not stop the rest.
    for wheel in .whl/*.whl; do
        $PY -m pip install --quiet --no-index --no-deps --upgrade --target "$site" "$wheel" ||
            echo "could not install $wheel"
    done
    export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi
$PY - <<'EOF'
import importlib
from importlib.metadata import version

for module, distribution in [
    ("cffi", "cffi"),
    ("setuptools", "setuptools"),
    ("attrs", "attrs"),
    ("trio", "trio"),
    ("click", "click"),
    ("rich", "rich"),
    ("pluggy", "pluggy"),
    ("pynvml", "nvidia-ml-py"),
]:
    try:
        importlib.import_module(module)
        print(f"{distribution:14} {version(distribution)}")
    except Exception as exc:
        print(f"{distribution:14} MISSING ({exc})")
EOF

section "build navarch._telemetry in place"
if timeout 120 $PY build.py > "$OUT/build.log" 2>&1; then
    echo "built"
else
    echo "BUILD FAILED (the checks below fall back to the ctypes backend); end of build.log:"
    tail -20 "$OUT/build.log"
fi
$PY -c "from navarch.telemetry import _native; print('default backend:', _native.BACKEND, _native.REASON)"

section "navarch gpus"
timeout 60 $PY -m navarch gpus || echo "(navarch gpus failed with status $?)"

section "navarch compared with nvidia-smi and nvidia-ml-py"
smi_fields=index,name,uuid,pci.bus_id,memory.total,memory.used,utilization.gpu,temperature.gpu,power.draw,power.limit,ecc.errors.corrected.volatile.total,ecc.errors.uncorrected.volatile.total,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max,clocks_throttle_reasons.active
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu="$smi_fields" --format=csv,noheader,nounits > "$OUT/nvidia-smi.csv"
else
    echo "nvidia-smi not found: navarch is compared with nvidia-ml-py only"
    : > "$OUT/nvidia-smi.csv"
fi
timeout 120 $PY - "$OUT/nvidia-smi.csv" <<'EOF'
import csv
import ctypes
import os
import sys

from navarch.telemetry import nvml

MIB = 1 << 20
backends = ["python"] + (["cffi"] if nvml.cffi_available() else [])
samples = {}
per_value = {}
for backend in backends:
    # The first sample learns each GPU's NVLink links by per-link calls; the second reads them,
    # with every other value NVML serves as a field, in one nvmlDeviceGetFieldValues call.
    with nvml.open_nvml(backend=backend) as session:
        session.sample()
        samples[backend] = session.sample()
    with nvml.open_nvml(backend=backend, batched=False) as session:
        per_value[backend] = session.sample()
mismatches = 0


def row(field, reference, values, same):
    global mismatches
    ok = all(same(v) for v in values)
    mismatches += not ok
    shown = "  ".join(f"{v!s:>24}" for v in values)
    print(f"  {field:34} {reference!s:>24}  {shown}  {'yes' if ok else 'NO'}")


def header(title):
    names = "  ".join(f"{'navarch ' + b:>24}" for b in backends)
    print(f"\n  {title:34} {'reference':>24}  {names}  match")


def number(text):
    text = text.strip()
    return None if text.startswith("[") or text == "N/A" else float(text)


def near(reference, tolerance):
    return lambda v: (v is None and reference is None) or (
        v is not None and reference is not None and abs(v - reference) <= tolerance
    )


def equal(reference):
    return lambda v: v == reference


with open(sys.argv[1]) as f:
    smi = [[cell.strip() for cell in line] for line in csv.reader(f)]
for line in smi:
    i = int(line[0])
    gpus = [samples[b][i] for b in backends]
    header(f"GPU {i}: nvidia-smi")
    row("name", line[1], [g.name for g in gpus], equal(line[1]))
    row("uuid", line[2], [g.uuid for g in gpus], equal(line[2]))
    bus = line[3].upper()
    row("pci_bus_id", bus, [g.pci_bus_id and g.pci_bus_id.upper() for g in gpus], equal(bus))
    for field, text, attr, scale, tolerance in [
        ("memory.total MiB", line[4], "memory_total_bytes", MIB, 1),
        ("memory.used MiB", line[5], "memory_used_bytes", MIB, 64),
        ("utilization.gpu %", line[6], "utilization_gpu_pct", 1, 15),
        ("temperature.gpu C", line[7], "temperature_c", 1, 3),
        ("power.draw W", line[8], "power_usage_mw", 1000, 25),
        ("power.limit W", line[9], "power_limit_mw", 1000, 1),
        ("ecc corrected volatile", line[10], "ecc_corrected_volatile", 1, 0),
        ("ecc uncorrected volatile", line[11], "ecc_uncorrected_volatile", 1, 0),
        # An idle GPU may change its link generation between the two reads.
        ("pcie.link.gen.current", line[12], "pcie_link_gen", 1, 3),
        ("pcie.link.gen.max", line[13], "pcie_link_gen_max", 1, 0),
        ("pcie.link.width.current", line[14], "pcie_link_width", 1, 0),
        ("pcie.link.width.max", line[15], "pcie_link_width_max", 1, 0),
    ]:
        reference = number(text)
        values = [getattr(g, attr) for g in gpus]
        values = [None if v is None else round(v / scale, 1) for v in values]
        row(field, reference, values, near(reference, tolerance))
    print(f"  {'clocks_throttle_reasons.active':34} {line[16]:>24}  "
          + "  ".join(f"{hex(g.clock_event_reasons or 0):>24}" for g in gpus))

try:
    import pynvml
except ImportError:
    pynvml = None
    print("\nnvidia-ml-py is not installed: no comparison with it")
if pynvml is not None:
    if os.environ.get(nvml.LIBRARY_ENV):  # a dry run on the fake library
        pynvml.nvmlLib = ctypes.CDLL(os.environ[nvml.LIBRARY_ENV])
    pynvml.nvmlInit()
    for i in range(pynvml.nvmlDeviceGetCount()):
        h = pynvml.nvmlDeviceGetHandleByIndex(i)
        gpus = [samples[b][i] for b in backends]

        def read(fn, *args, pick=lambda r: r):
            """pynvml's answer, or None where it raises (navarch then reports None too)."""
            try:
                return pick(fn(h, *args))
            except pynvml.NVMLError:
                return None

        header(f"GPU {i}: nvidia-ml-py")
        remap = read(pynvml.nvmlDeviceGetRemappedRows)
        field = pynvml.nvmlDeviceGetFieldValues(h, [pynvml.NVML_FI_DEV_GET_GPU_RECOVERY_ACTION])[0]

        def nvlink_sum(counter):
            """One NVLink error counter summed over the links that answer, as navarch's total
            field should read; None where link 0 has no counters."""
            total, answered = 0, False
            for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
                try:
                    total += pynvml.nvmlDeviceGetNvLinkErrorCounter(h, link, counter)
                    answered = True
                except pynvml.NVMLError as exc:
                    if exc.value == pynvml.NVML_ERROR_INVALID_ARGUMENT:
                        break
            return total if answered else None
        def nvlink_states():
            """nvmlDeviceGetNvLinkState of each link, as navarch's nvlink_active reads."""
            states = []
            for link in range(pynvml.NVML_NVLINK_MAX_LINKS):
                try:
                    states.append(bool(pynvml.nvmlDeviceGetNvLinkState(h, link)))
                except pynvml.NVMLError as exc:
                    if exc.value == pynvml.NVML_ERROR_INVALID_ARGUMENT:
                        break
                    if link == 0 and exc.value == pynvml.NVML_ERROR_NOT_SUPPORTED:
                        return ()
                    states.append(None)
            return tuple(states) if any(s is not None for s in states) else ()

        reference = {
            "name": read(pynvml.nvmlDeviceGetName),
            "pci_bus_id": read(pynvml.nvmlDeviceGetPciInfo_v3, pick=lambda p: p.busId),
            "memory_total_bytes": read(
                pynvml.nvmlDeviceGetMemoryInfo, pynvml.nvmlMemory_v2, pick=lambda m: m.total
            ),
            "temperature_slowdown_c": read(pynvml.nvmlDeviceGetTemperatureThreshold, 1),
            "temperature_shutdown_c": read(pynvml.nvmlDeviceGetTemperatureThreshold, 0),
            "power_limit_mw": read(pynvml.nvmlDeviceGetEnforcedPowerLimit),
            "retired_pages_sbe": read(pynvml.nvmlDeviceGetRetiredPages_v2, 0, pick=len),
            "retired_pages_dbe": read(pynvml.nvmlDeviceGetRetiredPages_v2, 1, pick=len),
            "retired_pages_pending": read(
                pynvml.nvmlDeviceGetRetiredPagesPendingStatus, pick=bool
            ),
            "remapped_rows_corrected": remap and remap[0],
            "remapped_rows_uncorrected": remap and remap[1],
            "remapped_rows_pending": remap and bool(remap[2]),
            "remapped_rows_failure": remap and bool(remap[3]),
            "pcie_replay_counter": read(pynvml.nvmlDeviceGetPcieReplayCounter),
            "pcie_link_gen_max": read(pynvml.nvmlDeviceGetMaxPcieLinkGeneration),
            "pcie_link_width": read(pynvml.nvmlDeviceGetCurrPcieLinkWidth),
            "pcie_link_width_max": read(pynvml.nvmlDeviceGetMaxPcieLinkWidth),
            # Counters: an error between the two reads shows as a mismatch worth a second look.
            "nvlink_replay_errors": nvlink_sum(pynvml.NVML_NVLINK_ERROR_DL_REPLAY),
            "nvlink_recovery_errors": nvlink_sum(pynvml.NVML_NVLINK_ERROR_DL_RECOVERY),
            "nvlink_crc_flit_errors": nvlink_sum(pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT),
            "nvlink_crc_data_errors": nvlink_sum(pynvml.NVML_NVLINK_ERROR_DL_CRC_DATA),
            "recovery_action": field.value.uiVal if field.nvmlReturn == 0 else None,
            "nvlink_active": nvlink_states(),
        }
        for kind, k in (("corrected", 0), ("uncorrected", 1)):
            for counter, c in (("volatile", 0), ("aggregate", 1)):
                reference[f"ecc_{kind}_{counter}"] = read(pynvml.nvmlDeviceGetTotalEccErrors, k, c)
        for attr, expected in reference.items():
            row(attr, expected, [getattr(g, attr) for g in gpus], equal(expected))
        for label, show in [
            ("nvlink up", lambda g: f"{sum(1 for x in g.nvlink_active if x)}/{len(g.nvlink_active)} up"),
            ("clock_event_reasons", lambda g: hex(g.clock_event_reasons or 0)),
            ("status", lambda g: g.status.name),
        ]:
            print(f"  {label:34} {'':>24}  " + "  ".join(f"{show(g):>24}" for g in gpus))
        for b, g in zip(backends, gpus):
            failed = {k: v.name for k, v in g.field_status.items() if v}
            print(f"  {b} queries that did not succeed: {failed or 'none'}")
    pynvml.nvmlShutdown()

dynamic = {"memory_used_bytes", "utilization_gpu_pct", "utilization_memory_pct",
           "temperature_c", "power_usage_mw", "clock_event_reasons", "pcie_link_gen"}
if len(backends) == 2:
    for a, b in zip(samples["python"], samples["cffi"]):
        differ = [k for k in a.__dict__ if k not in dynamic and getattr(a, k) != getattr(b, k)]
        print(f"\n  GPU {a.index}: both backends agree on every slow-changing field: {differ or 'yes'}")
        mismatches += bool(differ)
for backend in backends:
    for a, b in zip(samples[backend], per_value[backend]):
        differ = [k for k in a.__dict__ if k not in dynamic and getattr(a, k) != getattr(b, k)]
        print(f"  GPU {a.index}: {backend} batched and one call per value agree: {differ or 'yes'}")
        mismatches += bool(differ)
print(f"\n{mismatches} mismatches")
EOF

section "NVML events (1 second)"
timeout 60 $PY - <<'EOF'
import trio

from navarch.telemetry import nvml


async def main():
    backends = ["python"] + (["cffi"] if nvml.cffi_available() else [])
    for backend in backends:
        with nvml.open_nvml(backend=backend) as session:
            async with session.watch_events() as events:
                registered = {i: repr(t) for i, t in events.registered.items()}
                print(f"{backend}: registered {registered}")
                with trio.move_on_after(1):
                    async for event in events:
                        print(f"{backend}: {event}")


trio.run(main)
EOF

section "benchmark"
timeout 120 $PY bench/telemetry.py --seconds 2

section done
echo "log: $OUT/device.log"
