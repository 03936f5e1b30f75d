"""npppo.threads: the BLAS thread count is set for this process and for child processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from npppo.threads import ENV_VARS, get_num_threads, set_num_threads


@pytest.fixture
def restore_threads():
    environment = {name: os.environ.get(name) for name in ENV_VARS}
    before = get_num_threads()
    yield
    if before is not None:
        set_num_threads(before)
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def test_set_num_threads_reaches_the_loaded_blas(restore_threads):
    if get_num_threads() is None:
        pytest.skip("this NumPy's BLAS offers no thread control (not OpenBLAS, no threadpoolctl)")
    assert set_num_threads(1) is True
    assert get_num_threads() == 1
    assert set_num_threads(2) is True
    assert get_num_threads() == 2


def test_set_num_threads_sets_the_environment_for_child_processes(restore_threads):
    set_num_threads(1)
    assert all(os.environ[name] == "1" for name in ENV_VARS)


def test_numba_still_compiles_after_the_thread_count_changes(restore_threads):
    # Numba re-reads NUMBA_NUM_THREADS at every compilation and fails if it changed once its thread
    # pool runs; set_num_threads must neither start the pool nor break later compilations
    import numba
    from numba.np.ufunc import parallel

    set_num_threads(1)
    set_num_threads(2)
    assert not parallel._is_initialized
    assert numba.njit(lambda x: x + 1)(1) == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_set_num_threads_rejects_a_bad_count(bad):
    with pytest.raises(ValueError, match="threads"):
        set_num_threads(bad)


def _threads_after_making_an_agent(env: dict) -> str:
    code = ("import warnings; warnings.simplefilter('ignore'); from npppo import PPO, presets; "
            "from npppo.threads import get_num_threads; PPO('Pendulum-v1', presets.get('pendulum')); "
            "print(get_num_threads())")
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                              "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                            check=True)
    return result.stdout.strip()


def test_an_agent_uses_one_blas_thread_unless_told_otherwise():
    if os.cpu_count() < 2:
        pytest.skip("one core: the default and the override cannot be told apart")
    assert _threads_after_making_an_agent({}) == "1"
    assert _threads_after_making_an_agent({"OPENBLAS_NUM_THREADS": "2"}) == "2"
