"""Pure numba kernels over arrays: prefix walk, billing steps, prices (no I/O, no rater imports).

**The on-disk cache.** Kernels compile on first use and are cached (numba `cache=True`). numba
checks only the source file of the function it cached, not the files of the functions it
inlined or called: after a change to kernels/prefix.py alone, the cached rate kernel kept the
old prefix walk and matched short numbers by a shorter row. So the cache lives in a folder
named by a digest of every kernel source (under NUMBA_CACHE_DIR when it is set, else beside
these files when they are writable, else in the user's cache folder): any change to any kernel
compiles every cached function afresh, including rater's own that call kernels
(tests/unit/test_kernel_cache.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from numba.core import config as _numba_config

_HERE = Path(__file__).resolve().parent


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_HERE.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _cache_base() -> Path:
    given = os.environ.get("NUMBA_CACHE_DIR")
    if given:
        return Path(given)
    local = _HERE / "__pycache__"
    with contextlib.suppress(OSError):  # read-only site-packages: the user's cache instead
        local.mkdir(exist_ok=True)
    if os.access(local, os.W_OK):
        return local
    home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(home) / "rater"


# set before any kernel module is imported: numba picks a function's cache folder when it is
# decorated, from this setting
setattr(_numba_config, "CACHE_DIR", str(_cache_base() / f"numba-{_sources_digest()}"))  # noqa: B010 - untyped module
