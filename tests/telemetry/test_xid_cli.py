"""`navarch xid scan|explain`, run as a real subprocess with each engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.kmsg import ENGINES, engine_module, kmsg_readable, record, xid_line

from navarch.cli.xid import xid
from navarch.telemetry.xid_catalog import catalog

Run = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]

LOG = b"".join(
    [
        b"[ 1843.308140] nvidia-peermem nv_get_p2p_free_callback:127 ERROR detected invalid "
        b"context\n",
        b"[ 1843.308145] NVRM: Xid (PCI:0000:cb:00): 13, pid='<unknown>', name=<unknown>, Graphics "
        b"SM Warp Exception on (GPC 7, TPC 7, SM 0): Illegal Instruction Parameter\n",
        b"Nov 27 03:52:00 gpu-7 kernel: NVRM: Xid (PCI:0018:01:00): 149, NETIR_LINK_EVT Fatal XC0 "
        b"i0 Link 08 (0x004505c6 0x00000000 0x00000000)\n",
        b"[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0\n",
        b"               NVRM: (PCI ID: 10de:26b5) installed in this system has\n",
        b"               NVRM: fallen off the bus and is not responding to commands.\n",
        record(
            88,
            b"NVRM: Xid (PCI:0008:01:00): 154, GPU recovery action changed from 0x4 (Drain "
            b"and Reset) to 0x1 (GPU Reset Required)",
        ),
        record(89, xid_line(79, "written by a user process [/bold]"), facility=1),
        b"\xff\xfe binary \x00 junk\n",
        b"NVRM: Xid (0000:01:00): 31, pid=42, name=trainer, Ch 00000010 [/] not markup\n",
    ]
)


@pytest.fixture(params=ENGINES)
def run(request: pytest.FixtureRequest) -> Run:
    """Runs `python -m navarch ARGS` with the test's engine."""
    engine_module(request.param)
    disable = "1" if request.param == "python" else ""

    def run_(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "navarch", *args],
            input=stdin,
            capture_output=True,
            env={**os.environ, "NAVARCH_DISABLE_NATIVE": disable, "COLUMNS": "250"},
            cwd=REPO,
            timeout=60,
            check=False,
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )

    return run_


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "kern.log"
    path.write_bytes(LOG)
    return path


def test_scan_file_json_lines(run: Run, log: Path) -> None:
    result = run("xid", "scan", "--file", str(log), "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["line"], r["code"]) for r in rows] == [
        (2, 13),
        (3, 149),
        (4, 79),
        (7, 154),
        (10, 31),
    ]
    first, nvlink, fallen, action, last = rows
    assert first["immediate"] == "RESTART_APP"
    assert first["investigatory"] == "WORKFLOW_XID_13"
    assert first["pciBusId"] == "00000000:CB:00.0"
    assert nvlink["nvlink5"]["subcode"] == 4
    assert nvlink["nvlink5"]["fatal"] is True
    assert (fallen["inferred"], fallen["pciBusId"]) == (True, "00000000:B3:00.0")
    assert action["source"] == "kmsg" and action["seq"] == 88
    assert action["recoveryAction"] == {
        "old": 4,
        "oldName": "Drain and Reset",
        "new": 1,
        "newName": "GPU Reset Required",
    }
    assert (last["pid"], last["processName"], last["name"]) == (
        42,
        "trainer",
        "GPU memory page fault",
    )


def test_scan_file_table(run: Run, log: Path) -> None:
    result = run("xid", "scan", "--file", str(log))
    assert result.returncode == 0, result.stderr
    assert "RESTART_BM" in result.stdout
    assert "WORKFLOW_NVLINK5_ERR" in result.stdout
    assert "[/] not markup" in result.stdout


def test_scan_reads_standard_input(run: Run) -> None:
    result = run("xid", "scan", "--file", "-", "-o", "json", stdin=LOG)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 5


def test_scan_a_log_without_xids(run: Run, tmp_path: Path) -> None:
    path = tmp_path / "quiet.log"
    path.write_bytes(b"[    0.000000] Linux version 6.18\n" + record(3, xid_line(79), facility=1))
    assert run("xid", "scan", "--file", str(path)).stdout.strip() == "no XID errors found"
    assert run("xid", "scan", "--file", str(path), "--json").stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "give either --file FILE or --kmsg"),
        (("--kmsg", "--file", "x"), "give either --file FILE or --kmsg"),
        (("--file", "x", "--follow"), "--follow works with --kmsg only"),
        (("--file", "/nonexistent/kern.log"), "/nonexistent/kern.log: No such file or directory"),
    ],
)
def test_scan_usage_errors(run: Run, args: tuple[str, ...], message: str) -> None:
    result = run("xid", "scan", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"navarch: {message}"


@pytest.mark.skipif(not kmsg_readable(), reason="/dev/kmsg is not readable here")
def test_scan_the_live_kernel_log(run: Run) -> None:
    result = run("xid", "scan", "--kmsg", "--json")
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        assert json.loads(line)["source"] == "kmsg"


def test_explain(run: Run) -> None:
    result = run("xid", "explain", "79")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "XID 79: GPU has fallen off the bus (ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS)",
        "The GPU no longer answers on the PCIe bus. navarch also reports the fallen-off-the-bus "
        "lines that carry no XID number as 79.",
        "Applies to: A100, H100, B100, GB200",
        "Immediate: RESTART_BM: Power-cycle the bare-metal machine.",
        "Investigatory: CONTACT_SUPPORT: Contact NVIDIA support; the hardware may need to be "
        "returned.",
    ]
    data = json.loads(run("xid", "explain", "162", "--json").stdout)
    assert (data["mnemonic"], data["immediate"], data["investigatory"]) == (
        "PSHC_REENGAGED",
        None,
        None,
    )
    assert "Immediate: the catalog gives none" in run("xid", "explain", "162").stdout


def test_explain_answers_for_every_code_in_the_catalog() -> None:
    # In process: the command takes the same path for every code, and 172 processes are slow.
    codes = list(catalog().entries)
    assert len(codes) == 172
    for code in codes:
        text = CliRunner().invoke(xid, ["explain", str(code)], catch_exceptions=False)
        assert text.exit_code == 0, code
        assert text.output.startswith(f"XID {code}: "), code
        data = json.loads(CliRunner().invoke(xid, ["explain", str(code), "--json"]).output)
        assert (data["code"], data["unused"]) == (code, catalog().entries[code].unused)


def test_explain_an_unused_code(run: Run) -> None:
    result = run("xid", "explain", "42")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "XID 42: Unused (ROBUST_CHANNEL_VIC_ERROR)",
        "The catalog lists it as unused.",
        "NVIDIA marks this code unused; older drivers may still log it.",
        "Applies to: none of A100, H100, B100, GB200",
        "Immediate: CONTACT_SUPPORT: Contact NVIDIA support; the hardware may need to be returned.",
        "Investigatory: the catalog gives none",
    ]
    data = json.loads(run("xid", "explain", "93", "--json").stdout)
    assert (data["architectures"], data["unused"], data["nvidiaDescription"]) == (
        ["A100"],
        False,
        "Non-fatal violation of provisioned InfoROM wear limit",
    )


@pytest.mark.parametrize("code", ["999", "173", "0", "-5"])
def test_explain_an_unknown_code(run: Run, code: str) -> None:
    result = run("xid", "explain", "--", code)
    assert result.returncode == 2
    assert result.stderr == (
        f"navarch: XID {code} is not in navarch's XID catalog; docs/xid.md lists the codes\n"
    )


def test_explain_a_code_that_is_not_a_number(run: Run) -> None:
    result = run("xid", "explain", "seventy-nine")
    assert result.returncode == 2
    assert "is not a valid integer" in result.stderr
