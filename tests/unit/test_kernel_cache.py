"""Numba's on-disk cache never serves machine code built from older kernel sources.

numba checks only the source file of the function it cached, not the files of the functions
it inlined: a cached rate kernel kept the old prefix walk after kernels/prefix.py alone changed
(short numbers were then matched by a shorter prefix row). kernels/__init__.py keys the cache
folder by a digest of every kernel source; this test changes a callee's file only, and expects
the caller's next run to see it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import kernels

CALLEE = """

@njit(inline="always", cache=True)
def probe_value():  # type: ignore[no-untyped-def]
    return {value}
"""

CALLER = '''"""A cached function whose callee lives in another kernel file."""
from numba import njit

from kernels.prefix import probe_value


@njit(cache=True)
def probe():  # type: ignore[no-untyped-def]
    return probe_value() + 0
'''


def _run(root: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(root)
    done = subprocess.run(
        [sys.executable, "-c", "from kernels.probe import probe; print(probe())"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_a_change_to_a_callee_file_alone_is_compiled_afresh(tmp_path: Path) -> None:
    source = Path(kernels.__file__).parent
    copy = tmp_path / "kernels"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    prefix = copy / "prefix.py"
    original = prefix.read_text()
    prefix.write_text(original + CALLEE.format(value=1))
    (copy / "probe.py").write_text(CALLER)
    assert _run(tmp_path) == "1"
    assert _run(tmp_path) == "1"  # now from the cache

    prefix.write_text(original + CALLEE.format(value=2))
    assert _run(tmp_path) == "2"
