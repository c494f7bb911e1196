"""allocator.keep_freed_memory: a loop that allocates and frees big temporaries stops page-faulting.

That loop is what a NumPy training step is. By default glibc hands a freed heap top back to the
system once it passes a threshold, so every step maps (and page-faults) the same memory again;
in the GPT example that cost ~20 ms per step (docs/performance.md). Each case runs in a fresh
process, since the allocator's state is per process and the call cannot be undone.
"""

import subprocess
import sys

import pytest

STEPS = r"""
import resource, sys
import numpy as np
from tinygrad_llm import allocator
if sys.argv[1] == "keep" and not allocator.keep_freed_memory():
    print("unsupported"); sys.exit()
def step():
    a = np.ones(20 << 17); b = np.ones(20 << 17)   # two 20 MiB temporaries, every page touched
    del b, a
for _ in range(3):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode):
    out = subprocess.run([sys.executable, "-c", STEPS, mode], capture_output=True, text=True,
                         check=True).stdout.strip()
    return None if out == "unsupported" else int(out)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is Linux's")
def test_keep_freed_memory_removes_the_page_faults_of_a_repeated_step():
    kept = page_faults("keep")
    if kept is None:
        pytest.skip("no glibc mallopt here")
    plain = page_faults("plain")
    # 40 MiB per step is 10,240 pages; glibc's default allocator faults on most of them each time
    if plain < 5000:
        pytest.skip(f"this allocator reuses pages by itself ({plain} faults in 10 steps)")
    assert kept < 500, f"{kept} page faults in 10 steps with freed memory kept"
