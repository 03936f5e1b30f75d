"""npppo's Numba cache: where it lives and when it is invalidated."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import npppo
from npppo.jit import PACKAGE_DIR, package_stamp

CALLER = ("from npppo.jit import njit\nfrom npppo._callee import callee\n\n\n"
          "@njit\ndef caller(x):\n    return 2 * callee(x)\n")


def test_the_stamp_covers_every_source_file_of_the_package():
    assert {name for name, _, _ in package_stamp()} == {
        str(path.relative_to(PACKAGE_DIR)) for path in PACKAGE_DIR.rglob("*.py")}


def test_a_cached_kernel_is_recompiled_when_a_kernel_it_calls_changes_in_another_module(tmp_path):
    # Numba's own stamp covers the caller's file alone, so a cached caller would keep the old callee
    copy = tmp_path / "src" / "npppo"
    shutil.copytree(Path(npppo.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "_caller.py").write_text(CALLER)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)

    def run(increment: int) -> str:
        callee = f"from npppo.jit import njit\n\n\n@njit\ndef callee(x):\n    return x + {increment}\n"
        (copy / "_callee.py").write_text(callee)
        stamp = 1_700_000_000 + increment  # the same for the same source, distinct on coarse file systems
        os.utime(copy / "_callee.py", (stamp, stamp))
        code = "from npppo._caller import caller; print(caller(1), sum(caller.stats.cache_hits.values()))"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True, cwd=tmp_path).stdout.split()

    assert run(1) == ["4", "0"]  # compiled and cached
    assert run(1) == ["4", "1"]  # loaded from the cache
    assert run(2) == ["6", "0"]  # the callee changed: compiled again
