"""Environments for the worker and command-line tests, registered on import (so ``envs_for_tests:Id``
works from the command line and in worker processes, as a user's own module would)."""

import os
import time

import gymnasium as gym


class EpisodeSteps(gym.Wrapper):
    """Counts the steps of the current episode in ``steps``; subclasses change what a step returns."""

    def __init__(self, env) -> None:
        super().__init__(env)
        self.steps = 0

    def reset(self, **kwargs):
        self.steps = 0
        return self.env.reset(**kwargs)

    def step(self, action):
        self.steps += 1
        return self.changed(*self.env.step(action))

    def changed(self, obs, reward, terminated, truncated, info):
        return obs, reward, terminated, truncated, info


class Failing(EpisodeSteps):
    """Pendulum that raises in ``step`` after ``fail_after`` steps of an episode (a user's bug)."""

    def __init__(self, env, fail_after: int) -> None:
        super().__init__(env)
        self.fail_after = fail_after

    def changed(self, *result):
        if self.steps > self.fail_after:
            raise RuntimeError("the simulator fell over")
        return result


class NanReward(EpisodeSteps):
    """Pendulum whose reward is NaN from the ``nan_at``-th step of an episode on (a user's bug npppo finds)."""

    def __init__(self, env, nan_at: int) -> None:
        super().__init__(env)
        self.nan_at = nan_at

    def changed(self, obs, reward, terminated, truncated, info):
        return obs, float("nan") if self.steps >= self.nan_at else reward, terminated, truncated, info


class Slow(gym.Wrapper):
    """Pendulum slowed down by ``$NPPPO_TEST_SLEEP`` seconds a step (so a test can interrupt a run)."""

    def step(self, action):
        time.sleep(float(os.environ.get("NPPPO_TEST_SLEEP", "0")))
        return self.env.step(action)


def short_pendulum(steps: int = 20) -> gym.Env:
    return gym.make("Pendulum-v1", max_episode_steps=steps)


if "FailingPendulum-v0" not in gym.registry:
    gym.register("FailingPendulum-v0", entry_point=lambda fail_after=5: Failing(short_pendulum(), fail_after))
    gym.register("SlowPendulum-v0", entry_point=lambda: Slow(short_pendulum()))
    gym.register("NanRewardPendulum-v0", entry_point=lambda nan_at=3: NanReward(short_pendulum(), nan_at))


class Endless(gym.Env):
    """A valid continuous environment whose episodes never end (and that has no time limit)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.np_random.uniform(-1, 1, 2).astype("float32"), {}

    def step(self, action):
        return self.np_random.uniform(-1, 1, 2).astype("float32"), float(action[0]), False, False, {}


class SelfEnding(Endless):
    """Ends its own episodes (truncated by its own step counter, no TimeLimit), terminated at random
    before that: a simulation that stops at its end time."""

    def reset(self, *, seed=None, options=None):
        self.steps = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.steps += 1
        obs, reward, _, _, info = super().step(action)
        return obs, reward, bool(self.np_random.random() < 0.05), self.steps == 15, info


if "EndlessForTests-v0" not in gym.registry:  # registered without max_episode_steps: no TimeLimit
    gym.register("EndlessForTests-v0", entry_point=Endless)
    gym.register("SelfEndingForTests-v0", entry_point=SelfEnding)
