"""npppo.threads: the BLAS thread count is set for this process and for child processes, and learn() uses
one thread unless the user chose otherwise."""

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


def _child_threads(code: str, env: dict[str, str] | None = None) -> list[str]:
    """What a fresh Python process prints, one thread count a line; ``env`` replaces the thread variables."""
    environment = dict(os.environ) if env is None else {
        **{k: v for k, v in os.environ.items() if k not in ENV_VARS}, **env}
    result = subprocess.run([sys.executable, "-c", "from npppo.threads import get_num_threads\n" + code],
                            env=environment, capture_output=True, text=True, check=True, timeout=120)
    return result.stdout.split()


def test_set_num_threads_reaches_child_processes(restore_threads):
    if os.cpu_count() < 2 or get_num_threads() is None:
        pytest.skip("one core or no BLAS thread control: a child's default of one thread proves nothing")
    assert _child_threads("print(get_num_threads())", env={}) != ["1"]  # a child's own default
    set_num_threads(1)
    assert _child_threads("print(get_num_threads())") == ["1"]


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


LEARN_A_LITTLE = """
import gymnasium as gym
from npppo import PPO, presets
config = presets.get("seed").replace(num_envs=1, episodes_per_batch=1, trunk_sizes=[8], head_sizes=[],
                                     critic_sizes=[8], mu_activation="identity", actor_epochs=1, critic_epochs=1)
print(get_num_threads())
agent = PPO(lambda: gym.make("Pendulum-v1", max_episode_steps=10), config)
print(get_num_threads())
agent.learn(10)
print(get_num_threads())
"""


def test_learn_uses_one_blas_thread_unless_told_otherwise_and_making_an_agent_changes_nothing():
    if os.cpu_count() < 2 or get_num_threads() is None:
        pytest.skip("one core or no BLAS thread control: the default and the override cannot be told apart")
    before, made, learned = _child_threads(LEARN_A_LITTLE, env={})
    assert before != "1" and made == before and learned == "1"
    assert _child_threads(LEARN_A_LITTLE, env={"OPENBLAS_NUM_THREADS": "2"})[-1] == "2"
