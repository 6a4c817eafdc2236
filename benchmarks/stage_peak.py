"""Run one pipeline script and write its peak resident memory, in kB, to a file.

The kernel's `ru_maxrss` for a child (what `os.wait4` returns) starts from the RSS of the
process that spawned it, because Linux carries the old memory map's high-water mark across
`exec`. A benchmark parent that has just written a large table would set that floor for
every stage. `VmHWM` in /proc/self/status is the high-water mark of this process's own
memory since `exec`; its waited-for children (Dask workers) are read from
RUSAGE_CHILDREN, whose floor is at most this process's own peak.

    python benchmarks/stage_peak.py pipelines/train.py peak_kb.txt
"""

from __future__ import annotations

import atexit
import resource
import runpy
import sys
from pathlib import Path


def peak_kb() -> int:
    status = Path("/proc/self/status").read_text()
    own = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def main() -> None:
    script, output = sys.argv[1], Path(sys.argv[2])
    atexit.register(lambda: output.write_text(str(peak_kb())))
    sys.argv = [script]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
