"""How many threads BLAS (and Numba) may use, set without extra packages.

npppo's matrix products go to the BLAS that NumPy was built with. Its thread count is read from
environment variables once, when the library loads, so for the current process it has to be changed
through the library itself:

* ``threadpoolctl``, if it happens to be installed (it knows every BLAS);
* otherwise OpenBLAS's own ``*_set_num_threads`` function, called through :mod:`ctypes`. NumPy 2
  wheels bundle ``scipy-openblas`` (in ``numpy.libs`` or ``numpy/.libs``) whose symbols carry a
  prefix and suffix (``scipy_openblas_set_num_threads64_``); older builds export
  ``openblas_set_num_threads``. The loaded library is found in ``/proc/self/maps`` or beside NumPy.

The environment variables ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and
``NUMBA_NUM_THREADS`` are set as well, so child processes start with the same limit; the last one
only while Numba's thread pool has not started in this process (Numba re-reads it at every
compilation and refuses a change once its pool runs; npppo's own kernels are serial and never
start the pool).
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
_SET_SYMBOLS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)
_GET_SYMBOLS = tuple(name.replace("_set_", "_get_") for name in _SET_SYMBOLS)


def set_num_threads(n: int) -> bool:
    """Limit BLAS (and Numba's parallel kernels) to ``n`` threads; True if the loaded BLAS accepted it.

    Call it early: before BLAS work starts is best, and it never starts Numba's thread pool.

    The environment variables are set for child processes (see the module docstring). False means
    no BLAS control was found for this process: its BLAS keeps the thread count it started with.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"the number of threads must be an integer >= 1, got {n!r}")
    numba_launched = _numba_threads_launched()
    for name in ENV_VARS:
        if name != "NUMBA_NUM_THREADS" or not numba_launched:
            os.environ[name] = str(n)
    if numba_launched:
        _set_numba_threads(n)
    import numpy  # noqa: F401  (load NumPy's BLAS so there is something to configure)

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        pass
    else:
        threadpool_limits(limits=n, user_api="blas")
        return True
    library = _openblas()
    if library is None:
        return False
    for symbol in _SET_SYMBOLS:
        function = getattr(library, symbol, None)
        if function is not None:
            function.argtypes, function.restype = [ctypes.c_int], None
            function(n)
            return True
    return False


def requested_threads() -> int | None:
    """The BLAS thread count the environment asks for (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS), or None."""
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def apply_default_threads() -> None:
    """One BLAS thread unless the user chose otherwise (the variables above, or an earlier
    :func:`set_num_threads`, which sets them). npppo's matrices are small: a second OpenBLAS thread
    gains little on an idle machine and, on a busy one, made a 10-second Pendulum run take 4 minutes
    (docs/performance.md). :meth:`npppo.PPO.learn` and `npppo train` call this; making an agent does not."""
    if requested_threads() is None:
        set_num_threads(1)


def get_num_threads() -> int | None:
    """The loaded OpenBLAS's thread count, or None when it cannot be asked."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        pass
    else:
        counts = [pool["num_threads"] for pool in threadpool_info() if pool.get("user_api") == "blas"]
        return counts[0] if counts else None
    library = _openblas()
    for symbol in _GET_SYMBOLS:
        function = getattr(library, symbol, None) if library is not None else None
        if function is not None:
            function.argtypes, function.restype = [], ctypes.c_int
            return int(function())
    return None


def _numba_threads_launched() -> bool:
    """Whether Numba's thread pool is running. Its size is then fixed, and Numba re-reads
    ``NUMBA_NUM_THREADS`` at every compilation and fails if it changed: so leave that variable alone."""
    parallel = sys.modules.get("numba.np.ufunc.parallel")
    return bool(getattr(parallel, "_is_initialized", False))


def _set_numba_threads(n: int) -> None:
    """Use at most ``n`` threads of Numba's running pool (npppo's kernels are serial; this is for others)."""
    numba = sys.modules["numba"]
    try:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except (AttributeError, ValueError, RuntimeError):
        pass


def _openblas() -> ctypes.CDLL | None:
    """The OpenBLAS library NumPy loaded, opened again (the same handle, no second copy)."""
    for path in _candidate_paths():
        try:
            return ctypes.CDLL(str(path))
        except OSError:
            continue
    return None


def _candidate_paths() -> list[Path]:
    paths = []
    try:  # the libraries this process has mapped: exactly the one NumPy uses
        with open("/proc/self/maps") as maps:
            for line in maps:
                name = line.rsplit(" ", 1)[-1].strip()
                if "openblas" in Path(name).name.lower() and name not in paths:
                    paths.append(name)
    except OSError:
        pass
    import numpy

    numpy_dir = Path(numpy.__file__).parent
    for folder in (numpy_dir.parent / "numpy.libs", numpy_dir / ".libs"):
        if folder.is_dir():
            paths.extend(str(p) for p in sorted(folder.iterdir()) if "openblas" in p.name.lower())
    return [Path(p) for p in dict.fromkeys(paths)]
