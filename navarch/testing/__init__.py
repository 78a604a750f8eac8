"""What plugin authors test with, as `trio.testing` is what trio programs test with.

- `build_fake_nvml` and `FakeNvml`: a fake libnvidia-ml, compiled from the C source that ships in
  this package, whose GPUs a test sets, for health checks tested on machines without GPUs.

navarch itself never imports this package.
"""

from navarch.testing.fake_nvml import CompilerNotFound, FakeNvml, build_fake_nvml

__all__ = ["CompilerNotFound", "FakeNvml", "build_fake_nvml"]
