"""The fused rollout: a sampler's whole batch on compiled environments in one compiled call.

When every environment of a :class:`npppo.sampler.Sampler` is a compiled environment
(:mod:`npppo.envs.compiled`) under neutral wrappers, the sampler hands its batches to a
:class:`FusedRollout`. It gives the same rows, bit for bit, as the sampler's Python loop over the
Gymnasium form of the same environments, because it runs the same kernels on the same numbers:

* the same streams (:mod:`npppo.streams`): episode ``k`` of iteration ``i`` is reset from its
  ``EPISODE_RESET`` seed and draws its noise from its ``EPISODE_NOISE`` stream; fixed-step
  environments from ``FIXED_RESET`` and ``FIXED_NOISE`` (see :mod:`npppo.sampler`). Resets and
  noise are drawn in Python before the call (a reset runs the environment's own reset, as
  Gymnasium's ``reset(seed=...)`` would);
* per step, inside the call: the observation normalised (:func:`npppo.policy.normalize_observation`,
  as :func:`npppo.inference.normalize_observations` does), the row-by-row forward
  (:func:`npppo.policy._policy_rows`), :func:`npppo.sampler.sample_actions`,
  the environment's compiled step (the very machine code its ``gymnasium.Env`` form calls), the
  observation rounded to the environment's observation dtype, the time limit, storage, episode ends;
* rows in the sampler's order. Environments share nothing, so the call runs one *lane* after
  another (a whole episode, or one environment's steps) and writes each lane's rows in place.

The call stops early, keeping every lane's progress in its arrays, when a lane needs what Python
must make (more noise for a long episode, a reset for a fixed-step environment whose episodes end
more often than its time limit says, more rows, or when a step returned a non-finite value); the
driver supplies it and calls again, so those events cost a call, not a change of result.
"""

from __future__ import annotations

import numba
import numpy as np
from gymnasium.utils import seeding

from npppo.envs import env_name
from npppo.envs.compiled import STEP_TYPE, compiled_of
from npppo.envs.make import episode_too_long
from npppo.jit import njit
from npppo.normalization import obs_shift_scale
from npppo.policy import _policy_rows, normalize_observation
from npppo.sampler import Batch, sample_actions
from npppo.streams import EPISODE_NOISE, EPISODE_RESET, FIXED_NOISE, FIXED_RESET, generator, reset_seed

NOISE_ROWS_MAX = 4096  # noise drawn per episode before the call (more on demand)
# the call's answers
DONE, NEED_NOISE, NEED_RESET, NEED_ROWS, NONFINITE = range(5)
# its counters: the current lane, rows, segments and episodes written
LANE, ROWS, SEGMENTS, EPISODES = range(4)


def _rollout(step, env_params, params, layout, alphas, parts, sigma_min, obs_shift_scale, obs_clip, bounds, squash,
             round_obs, time_limit, lane_steps, states, lane_obs, lane_return, lane_length, lane_done, needs_reset,
             noise, noise_used, resets, reset_obs, resets_ready, resets_used,
             rows_obs, rows_actions, rows_log_prob, rows_rewards, end_steps, end_obs, end_terminated,
             episode_returns, episode_lengths, counters):
    """Run lanes ``counters[LANE]`` onward; returns DONE or why it stopped (the lane in counters[LANE]).

    A lane is a whole episode (``lane_steps`` < 0: until it ends) or one environment's
    ``lane_steps`` steps (its episodes reset from ``resets`` as they end). Per lane: states (L, S),
    lane_obs (L, obs_dim), lane_return, lane_length, lane_done (steps so far), needs_reset (L,);
    noise (L, chunk, D) with noise_used (L,); resets (L, Q, S), reset_obs (L, Q, obs_dim) with
    resets_ready, resets_used (L,). Rows: rows_obs (R, obs_dim), rows_actions (R, D), rows_log_prob,
    rows_rewards (R,); segments: end_steps, end_terminated (R,), end_obs (R, obs_dim); episodes:
    episode_returns, episode_lengths (R,). obs_shift_scale (2, obs_dim): mean and sqrt(var + eps), or
    (0, obs_dim); bounds (2, D): the actions' low and high.
    """
    obs_dim, dims = lane_obs.shape[1], rows_actions.shape[1]
    x = np.empty((1, obs_dim), params.dtype)
    mu = np.empty((1, dims), params.dtype)
    sigma = np.empty((1, dims), params.dtype)
    env_action = np.empty((1, dims))
    next_obs = np.empty(obs_dim)
    while counters[LANE] < lane_steps.shape[0]:
        lane = counters[LANE]
        state = states[lane]
        while True:
            if needs_reset[lane]:
                k = resets_used[lane]
                if k == resets_ready[lane]:
                    return NEED_RESET
                state[:] = resets[lane, k]
                lane_obs[lane] = reset_obs[lane, k]
                resets_used[lane] += 1
                needs_reset[lane] = False
                lane_return[lane], lane_length[lane] = 0.0, 0
            fixed = lane_steps[lane] >= 0
            if fixed and lane_done[lane] == lane_steps[lane]:
                break
            if noise_used[lane] == noise.shape[1]:
                return NEED_NOISE
            row = counters[ROWS]
            if row == rows_rewards.shape[0]:
                return NEED_ROWS
            for j in range(obs_dim):
                rows_obs[row, j] = lane_obs[lane, j]
            normalize_observation(lane_obs, lane, obs_shift_scale, obs_clip, x)
            _policy_rows(params, layout, alphas, parts, sigma_min, x, mu, sigma, True)
            used = noise_used[lane]
            sample_actions(mu, sigma, noise[lane, used : used + 1], bounds, squash, rows_actions[row : row + 1],
                           env_action, rows_log_prob[row : row + 1])
            noise_used[lane] = used + 1
            reward, terminated, truncated = step(env_params, state, env_action[0], next_obs)
            if round_obs:
                for j in range(obs_dim):
                    next_obs[j] = np.float64(np.float32(next_obs[j]))
            rows_rewards[row] = reward
            counters[ROWS] = row + 1
            lane_return[lane] += reward
            lane_length[lane] += 1
            lane_done[lane] += 1
            if time_limit > 0 and lane_length[lane] >= time_limit:
                truncated = True
            lane_obs[lane] = next_obs
            if not np.isfinite(reward) or not np.all(np.isfinite(next_obs)):
                return NONFINITE
            over = terminated or truncated
            if over or (fixed and lane_done[lane] == lane_steps[lane]):
                s = counters[SEGMENTS]
                end_steps[s] = row
                end_obs[s] = next_obs
                end_terminated[s] = terminated
                counters[SEGMENTS] = s + 1
            if over:
                e = counters[EPISODES]
                episode_returns[e], episode_lengths[e] = lane_return[lane], lane_length[lane]
                counters[EPISODES] = e + 1
                if not fixed:
                    break
                needs_reset[lane] = True
        counters[LANE] = lane + 1
    return DONE


_KERNELS: dict = {}


def _kernel(args: tuple):
    """The compiled :func:`_rollout` for these arguments (compiled, or loaded from the cache, once per
    signature); the step is typed by its signature alone, so one machine code serves every environment."""
    signature = (STEP_TYPE, *(numba.typeof(arg) for arg in args[1:]))
    if signature not in _KERNELS:
        _KERNELS[signature] = njit(numba.int64(*signature))(_rollout)
    return _KERNELS[signature]


class FusedRollout:
    """The batches of ``sampler`` (whose environments are all the compiled ``spec`` with ``time_limit``)."""

    def __init__(self, sampler, spec, time_limit: int | None) -> None:
        self.sampler, self.spec, self.time_limit = sampler, spec, time_limit
        self._live = None  # fixed-step batches: (states, obs, returns, lengths) of each environment's episode
        self._compiled = None  # the compiled call for this sampler's argument types
        self._batch(np.zeros((0,), np.int64), np.zeros((0, 0, sampler.action_dim)), None)  # compile or load now

    @classmethod
    def of(cls, sampler) -> FusedRollout | None:
        """The fused rollout of ``sampler``, or None unless all its environments are the same compiled one."""
        found = [compiled_of(env) for env in sampler.envs]
        if not found or any(f is None for f in found):
            return None
        spec, limit = found[0]
        for other, other_limit in found[1:]:
            if (other.step is not spec.step or other.reset is not spec.reset or other_limit != limit
                    or not np.array_equal(other.params, spec.params) or other.state_size != spec.state_size):
                return None
        return cls(sampler, spec, limit)

    # ------------------------------------------------------------------ the two drivers
    def collect_episodes(self, iteration: int, episode_ids: list[int], obs_stats=None) -> Batch:
        """:meth:`npppo.sampler.Sampler.collect_episodes`, fused."""
        s, lanes = self.sampler, len(episode_ids)
        # noise for at most episode_step_limit steps at a time: an episode past it comes back for more
        chunk = min(self.time_limit or NOISE_ROWS_MAX, NOISE_ROWS_MAX, s.episode_step_limit)
        streams = [generator(EPISODE_NOISE, s.run_seed, iteration, episode) for episode in episode_ids]
        lane = self._lanes(lanes)
        for k, episode in enumerate(episode_ids):
            seed = reset_seed(EPISODE_RESET, s.run_seed, iteration, episode)
            self._reset(lane["states"][k], lane["obs"][k], seed, k % len(s.envs))
        noise = np.empty((lanes, chunk, s.action_dim))
        for k, stream in enumerate(streams):
            noise[k] = stream.standard_normal((chunk, s.action_dim))
        rows = lanes * self.time_limit if self.time_limit else lanes * chunk
        return self._batch(np.full(lanes, -1, np.int64), noise, obs_stats, lane, rows, streams=streams)

    def collect_steps(self, iteration: int, steps_per_env: list[int], obs_stats=None) -> Batch:
        """:meth:`npppo.sampler.Sampler.collect_steps`, fused; each environment's episode persists in
        this object between batches."""
        s, n = self.sampler, len(self.sampler.envs)
        if self._live is None:
            self._live = self._lanes(n)
            for e in range(n):
                self._reset(self._live["states"][e], self._live["obs"][e], self._fixed_seed(e, 0), e)
                s.episodes_started[e] += 1
        steps = np.asarray(steps_per_env, np.int64)
        noise = np.empty((n, max(int(steps.max(initial=0)), 1), s.action_dim))
        for e in range(n):
            if steps[e] > 0:
                stream = generator(FIXED_NOISE, s.run_seed, s.env_ids[e], iteration)
                noise[e, : steps[e]] = stream.standard_normal((steps[e], s.action_dim))
        lane = {**self._live, "done": np.zeros(n, np.int64), "noise_used": np.zeros(n, np.int64)}
        # the episode ends the time limit promises (terminations ask for more during the call)
        ends = (self._live["lengths"] + steps) // self.time_limit if self.time_limit else np.zeros(n, np.int64)
        lane["resets"], lane["reset_obs"] = self._reset_arrays(n, int(ends.max(initial=0)))
        for e in range(n):
            self._prepare_resets(lane, e, int(ends[e]))
        batch = self._batch(steps, noise, obs_stats, lane, int(steps.sum()))
        s.episodes_started += lane["resets_used"]
        return batch

    # ------------------------------------------------------------------ the call and its batch
    def _batch(self, lane_steps, noise, obs_stats, lane=None, rows: int = 0, streams=None) -> Batch:
        """Run the compiled call over the lanes until it is done, supplying what it asks for."""
        s, spec = self.sampler, self.spec
        lanes = lane_steps.shape[0]
        lane = lane if lane is not None else {**self._lanes(lanes), "done": np.zeros(lanes, np.int64)}
        lane.setdefault("done", np.zeros(lanes, np.int64))
        lane.setdefault("noise_used", np.zeros(lanes, np.int64))
        if "resets" not in lane:
            lane["resets"], lane["reset_obs"] = self._reset_arrays(lanes, 0)
        lane.setdefault("resets_ready", np.zeros(lanes, np.int64))
        lane["resets_used"] = np.zeros(lanes, np.int64)
        store = _Store(max(rows, 1), s.obs_dim, s.action_dim)
        counters = np.zeros(4, np.int64)
        shift_scale = np.zeros((0, s.obs_dim))
        if obs_stats is not None:
            shift_scale = obs_shift_scale(*obs_stats)
        policy = s.policy
        while True:
            args = (spec.step, spec.params, policy.params, *policy._rows_args, shift_scale,
                    float(s.obs_clip if s.obs_clip is not None else 0.0), s.action_bounds,
                    policy.squashed, spec.obs_dtype == np.float32, int(self.time_limit or 0),
                    lane_steps, lane["states"], lane["obs"], lane["returns"], lane["lengths"], lane["done"],
                    lane["needs_reset"], noise, lane["noise_used"], lane["resets"], lane["reset_obs"],
                    lane["resets_ready"], lane["resets_used"], *store.arrays(), counters)
            if self._compiled is None:  # typing the arguments costs more than a small batch's call
                self._compiled = _kernel(args)
            answer = self._compiled(*args)
            k = int(counters[LANE])
            if answer == DONE:
                return store.batch(counters)
            if answer == NEED_NOISE:
                if lane_steps[k] < 0 and lane["lengths"][k] >= s.episode_step_limit:
                    raise episode_too_long(env_name(s.envs[k % len(s.envs)]), s.episode_step_limit)
                noise[k] = streams[k].standard_normal(noise.shape[1:])
                lane["noise_used"][k] = 0
            elif answer == NEED_RESET:
                self._prepare_resets(lane, k, int(lane["resets_ready"][k]) + 1)
            elif answer == NEED_ROWS:
                store.grow()
            else:
                row = int(counters[ROWS]) - 1
                e = k if lane_steps[k] >= 0 else k % len(s.envs)
                raise s._nonfinite(e, int(lane["lengths"][k]), float(store.rewards[row]), lane["obs"][k])

    def _lanes(self, lanes: int) -> dict:
        states = np.zeros((lanes, self.spec.state_size))
        return {"states": states, "obs": np.zeros((lanes, self.sampler.obs_dim)), "returns": np.zeros(lanes),
                "lengths": np.zeros(lanes, np.int64), "needs_reset": np.zeros(lanes, np.bool_)}

    def _reset_arrays(self, lanes: int, per_lane: int) -> tuple[np.ndarray, np.ndarray]:
        return (np.zeros((lanes, per_lane, self.spec.state_size)), np.zeros((lanes, per_lane, self.sampler.obs_dim)))

    def _prepare_resets(self, lane: dict, e: int, count: int) -> None:
        """Fixed-step environment e's next ``count`` resets (beyond those its episodes have used), made ready."""
        resets, reset_obs = lane["resets"], lane["reset_obs"]
        if count > resets.shape[1]:
            grown = self._reset_arrays(resets.shape[0], max(count, 2 * resets.shape[1]))
            grown[0][:, : resets.shape[1]], grown[1][:, : resets.shape[1]] = resets, reset_obs
            lane["resets"], lane["reset_obs"] = resets, reset_obs = grown
        lane.setdefault("resets_ready", np.zeros(resets.shape[0], np.int64))
        for k in range(int(lane["resets_ready"][e]), count):
            self._reset(resets[e, k], reset_obs[e, k], self._fixed_seed(e, k), e)
        lane["resets_ready"][e] = max(count, int(lane["resets_ready"][e]))

    def _fixed_seed(self, e: int, ahead: int) -> int:
        """The reset seed of fixed-step environment e's episode ``ahead`` after those begun so far."""
        s = self.sampler
        return reset_seed(FIXED_RESET, s.run_seed, s.env_ids[e], int(s.episodes_started[e]) + ahead)

    def _reset(self, state: np.ndarray, obs: np.ndarray, seed: int, e: int) -> None:
        """The environment's reset from ``seed``, as ``reset(seed=seed)`` of its Gymnasium form does it."""
        rng, _ = seeding.np_random(seed)
        self.spec.reset(self.spec.params, state, rng, obs)
        obs[:] = self.spec.observe(obs)
        if not np.isfinite(obs).all():
            raise self.sampler._nonfinite(e, 0, 0.0, obs)


class _Store:
    """The call's output arrays (rows, segments, episodes), grown by doubling when it asks."""

    NAMES = ("obs", "actions", "log_prob", "rewards", "end_steps", "end_obs", "end_terminated", "episode_returns",
             "episode_lengths")

    def __init__(self, capacity: int, obs_dim: int, action_dim: int) -> None:
        self.obs, self.actions = np.zeros((capacity, obs_dim)), np.zeros((capacity, action_dim))
        self.log_prob, self.rewards = np.zeros(capacity), np.zeros(capacity)
        self.end_steps, self.end_obs = np.zeros(capacity, np.int64), np.zeros((capacity, obs_dim))
        self.end_terminated = np.zeros(capacity, np.bool_)
        self.episode_returns, self.episode_lengths = np.zeros(capacity), np.zeros(capacity, np.int64)

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, name) for name in self.NAMES]

    def grow(self) -> None:
        for name in self.NAMES:
            old = getattr(self, name)
            new = np.zeros((2 * old.shape[0], *old.shape[1:]), old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)

    def batch(self, counters: np.ndarray) -> Batch:
        rows, segments, episodes = (int(counters[k]) for k in (ROWS, SEGMENTS, EPISODES))
        episode_ends = np.zeros(rows, bool)
        episode_ends[self.end_steps[:segments]] = True
        return Batch(obs=self.obs[:rows].copy(), actions=self.actions[:rows].copy(),
                     log_prob=self.log_prob[:rows].copy(), rewards=self.rewards[:rows].copy(),
                     episode_ends=episode_ends, end_steps=self.end_steps[:segments].copy(),
                     end_obs=self.end_obs[:segments].copy(), end_terminated=self.end_terminated[:segments].copy(),
                     episode_returns=self.episode_returns[:episodes].copy(),
                     episode_lengths=self.episode_lengths[:episodes].copy())

