from __future__ import annotations

from navarch.daemon.host import ProcHostStats


def write_proc(tmp_path, busy, idle, available_kb):
    (tmp_path / "stat").write_text(f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    (tmp_path / "meminfo").write_text(
        f"MemTotal:       1000 kB\nMemFree:        100 kB\nMemAvailable:   {available_kb} kB\n"
    )


def test_cpu_is_measured_between_reads_and_memory_from_available(tmp_path):
    write_proc(tmp_path, busy=100, idle=100, available_kb=750)
    stats = ProcHostStats(tmp_path)
    write_proc(tmp_path, busy=130, idle=170, available_kb=250)
    assert stats.read() == (30.0, 75.0)
    assert stats.read() == (0.0, 75.0)  # no time passed


def test_missing_proc_reads_zero(tmp_path):
    assert ProcHostStats(tmp_path / "nowhere").read() == (0.0, 0.0)


def test_real_proc_gives_percentages():
    cpu, memory = ProcHostStats().read()
    assert 0 <= cpu <= 100 and 0 < memory <= 100
