"""The one place npppo's kernels are compiled: ``njit`` with caching, and where that cache lives.

Numba caches a compiled function beside its source, in the module's ``__pycache__``. For an
installed npppo that is inside ``site-packages``, where pip does not own the files: a later
``pip install -e .`` leaves that folder behind, and it then hides the editable install. So npppo's
own kernels cache under ``$XDG_CACHE_HOME/npppo`` (``~/.cache/npppo`` by default). ``NUMBA_CACHE_DIR``,
when set, still wins (Numba's own locator comes first), and functions outside npppo (a user's own)
cache where Numba always puts them: this locator answers only for files inside the package.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numba
from numba.core import caching

PACKAGE_DIR = Path(__file__).resolve().parent


def cache_root() -> Path:
    """``$XDG_CACHE_HOME/npppo`` or ``~/.cache/npppo``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "npppo"


class PackageCacheLocator(caching._SourceFileBackedLocatorMixin, caching._CacheLocator):
    """Numba cache locator for functions defined in npppo's own source files."""

    def __init__(self, py_func, py_file) -> None:
        self._py_file = py_file
        self._lineno = py_func.__code__.co_firstlineno
        self._cache_path = str(cache_root() / self.get_suitable_cache_subpath(py_file))

    def get_cache_path(self) -> str:
        return self._cache_path

    def get_source_stamp(self):
        """The stamp of every source file of the package, not only this function's: a cached kernel
        holds the kernels it calls from other modules compiled into it, so a change to any of them
        (an edit, an upgrade) must invalidate it. Numba's default stamps the function's own file alone."""
        return package_stamp()

    @classmethod
    def from_function(cls, py_func, py_file):
        if not Path(py_file).resolve().is_relative_to(PACKAGE_DIR):
            return None
        return super().from_function(py_func, py_file)


@functools.cache
def package_stamp() -> tuple:
    """(path, modification time, size) of each of npppo's source files."""
    return tuple((str(path.relative_to(PACKAGE_DIR)), path.stat().st_mtime, path.stat().st_size)
                 for path in sorted(PACKAGE_DIR.rglob("*.py")))


_locators = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # public from Numba 0.61
_locators = _locators._locator_classes
if PackageCacheLocator not in _locators:
    _locators.insert(1, PackageCacheLocator)  # after NUMBA_CACHE_DIR's, before the in-tree one

# nogil: the critic's update runs in a thread beside the actor's (npppo.ppo), and a kernel that
# held the GIL would make them take turns
njit = functools.partial(numba.njit, cache=True, nogil=True)
