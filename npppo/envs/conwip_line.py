"""ConwipLine-v0: the seed's own task, a two-machine flow line under CONWIP release.

The design is ``CONWIP.md`` ("What npppo builds"). Orders arrive in bursts, wait in an order queue
(not WIP) and are released into the line while WIP < cap; each part goes buffer 1 → machine 1 →
buffer 2 → machine 2 → exit, every queue first in, first out. Every 30 time units the agent sets
the cap.

Because every queue is FIFO and each station has one server, parts never overtake each other: the
i-th order to arrive is the i-th released, the i-th to start and finish on machine 1, and so on.
The whole line state is therefore six counters (arrived, released, started and finished on each
machine) plus two completion clocks, and the k-th part on machine j takes the k-th number of machine
j's stream, which is what makes a twin line see exactly the same random numbers.

It is a compiled environment (:mod:`npppo.envs.compiled`): the whole state, both lines and the
episode's drawn random numbers, is one float64 array, and a step is one compiled call around the
event loop :func:`_simulate_epoch`, so npppo's fused rollout steps it without Python.
"""

from __future__ import annotations

import numpy as np

from npppo.envs.compiled import CompiledEnv, CompiledSpec
from npppo.jit import njit

EPOCH = 30.0  # time units between decisions
SAMPLE_EVERY = 5.0  # WIP and machine states are sampled at t + 5, ..., t + 30
WARMUP_CAPS = 4  # random caps at t = 0, 30, 60, 90; the first decision comes at t = 120
DECISIONS = 99  # decisions at t = 120, 150, ..., 3060; the episode ends at t = 3090
WARMUP_END = WARMUP_CAPS * EPOCH
HORIZON = WARMUP_END + DECISIONS * EPOCH
ARRIVAL_MEAN, ARRIVAL_STD = 1.0, 20.0  # gap = max(0, Normal(1, 20))
SERVICE_MAX = 20.0  # processing time ~ Uniform(0, 20) on each machine
MAX_CAP = 100
CHUNK = 512  # random numbers drawn per chunk, until they cover the horizon

# counters (int64) and clocks (float64) of one line; DONE_BEFORE counts the exits before t = 120,
# which the decision phase's throughput, lead and flow times leave out
ARRIVED, RELEASED, M1_STARTED, M1_DONE, M2_STARTED, DONE, DONE_BEFORE = range(7)
TIME, M1_END, M2_END, SUM_LEAD, SUM_FLOW = range(5)


@njit
def _simulate_epoch(arrival_times, gaps, m1_times, m2_times, release_times, counts, clocks, cap, measure_from,
                    obs):
    """Run one line for EPOCH time units under ``cap``; update ``counts``, ``clocks`` and ``obs`` in place.

    arrival_times, gaps (n_orders,): order arrival instants and the gaps before them; m1_times,
    m2_times: per-part processing times in start order; release_times (n_orders,): written as parts
    are released. ``measure_from``: exits at or after this time count towards lead and flow time.
    ``obs`` (8,) keeps a feature's previous value when the epoch had no event for it.
    Returns (parts completed in the epoch, time integral of WIP over the epoch).
    """
    t = clocks[TIME]
    t_end = t + EPOCH
    next_sample = t + SAMPLE_EVERY
    inf = np.inf
    parts = 0
    area = 0.0
    wip_samples = busy1_samples = busy2_samples = n_samples = 0
    gap_sum = gap_sq = 0.0
    n_gaps = 0
    m1_sum = m2_sum = 0.0
    m1_n = m2_n = 0
    while True:
        # instantaneous moves at time t: release while below the cap, start idle machines
        while counts[RELEASED] - counts[DONE] < cap and counts[ARRIVED] > counts[RELEASED]:
            release_times[counts[RELEASED]] = t
            counts[RELEASED] += 1
        if counts[M1_STARTED] == counts[M1_DONE] and counts[RELEASED] > counts[M1_STARTED]:
            clocks[M1_END] = t + m1_times[counts[M1_STARTED]]
            counts[M1_STARTED] += 1
        if counts[M2_STARTED] == counts[DONE] and counts[M1_DONE] > counts[M2_STARTED]:
            clocks[M2_END] = t + m2_times[counts[M2_STARTED]]
            counts[M2_STARTED] += 1
        m1_busy = counts[M1_STARTED] > counts[M1_DONE]
        m2_busy = counts[M2_STARTED] > counts[DONE]
        wip = counts[RELEASED] - counts[DONE]
        next_arrival = arrival_times[counts[ARRIVED]]
        next_m1 = clocks[M1_END] if m1_busy else inf
        next_m2 = clocks[M2_END] if m2_busy else inf
        t_next = min(next_arrival, next_m1, next_m2)
        if t_next > next_sample:
            # nothing happens before the next sampling instant: sample the state there
            area += wip * (next_sample - t)
            t = next_sample
            wip_samples += wip
            busy1_samples += m1_busy
            busy2_samples += m2_busy
            n_samples += 1
            if next_sample >= t_end:
                break
            next_sample += SAMPLE_EVERY
            continue
        area += wip * (t_next - t)
        t = t_next
        if next_arrival == t_next:
            gap = gaps[counts[ARRIVED]]
            gap_sum += gap
            gap_sq += gap * gap
            n_gaps += 1
            counts[ARRIVED] += 1
        elif next_m1 == t_next:
            m1_sum += m1_times[counts[M1_DONE]]
            m1_n += 1
            counts[M1_DONE] += 1
        else:
            part = counts[DONE]
            m2_sum += m2_times[part]
            m2_n += 1
            counts[DONE] += 1
            parts += 1
            if t >= measure_from:
                clocks[SUM_LEAD] += t - arrival_times[part]
                clocks[SUM_FLOW] += t - release_times[part]
            else:
                counts[DONE_BEFORE] += 1
    clocks[TIME] = t_end
    obs[0] = wip_samples / n_samples
    if n_gaps > 0:
        mean_gap = gap_sum / n_gaps
        obs[1] = mean_gap
        # sample standard deviation; 0 when one gap cannot show a spread
        obs[2] = np.sqrt(max(gap_sq - n_gaps * mean_gap * mean_gap, 0.0) / (n_gaps - 1)) if n_gaps > 1 else 0.0
    obs[3] = busy1_samples / n_samples
    obs[4] = busy2_samples / n_samples
    if m1_n > 0:
        obs[5] = m1_sum / m1_n
    if m2_n > 0:
        obs[6] = m2_sum / m2_n
    obs[7] = cap
    return parts, area


def _draw_covering(rng: np.random.Generator, draw, span: float) -> np.ndarray:
    """Draw chunks of ``draw(rng, CHUNK)`` until their sum exceeds ``span`` (they then cannot run out).

    The stream is consumed in order, so the k-th number is the same however many chunks are drawn.
    """
    chunks = [draw(rng, CHUNK)]
    total = float(chunks[0].sum())
    while total <= span:
        chunks.append(draw(rng, CHUNK))
        total += float(chunks[-1].sum())
    return np.concatenate(chunks)


def _gaps(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.maximum(rng.normal(ARRIVAL_MEAN, ARRIVAL_STD, n), 0.0)


def _service(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.uniform(0.0, SERVICE_MAX, n)


# the compiled state (one float64 array): the last step's results, each line's counters, clocks and
# observation, then the drawn random numbers and each line's release times, CAPACITY slots each
STEPS, WARMUP_CAP, CAP, PARTS, WIP, TWIN_PARTS, TWIN_WIP = range(7)
LINE, TWIN = 7, 7 + 20  # each: counts (7), clocks (5), obs (8)
CAPACITY = 4 * CHUNK  # numbers per stream; drawing more than this raises (one chunk is almost always enough)
GAPS, ARRIVALS, M1_TIMES, M2_TIMES, RELEASES, TWIN_RELEASES = (7 + 40 + k * CAPACITY for k in range(6))
STATE_SIZE = 7 + 40 + 6 * CAPACITY
TWIN_MODE, WIP_COST, TWIN_CAP = range(3)  # the params' slots


@njit
def _advance(state, line, cap):
    """One epoch of the line whose block starts at ``line`` (LINE or TWIN) under ``cap``, through
    :func:`_simulate_epoch` on views of ``state``; returns (parts completed, WIP time integral)."""
    counts = np.empty(7, np.int64)
    for k in range(7):
        counts[k] = np.int64(state[line + k])
    obs = np.empty(8, np.float32)
    for k in range(8):
        obs[k] = state[line + 12 + k]
    releases = RELEASES if line == LINE else TWIN_RELEASES
    parts, area = _simulate_epoch(state[ARRIVALS : ARRIVALS + CAPACITY], state[GAPS : GAPS + CAPACITY],
                                  state[M1_TIMES : M1_TIMES + CAPACITY], state[M2_TIMES : M2_TIMES + CAPACITY],
                                  state[releases : releases + CAPACITY], counts, state[line + 7 : line + 12], cap,
                                  WARMUP_END, obs)
    for k in range(7):
        state[line + k] = counts[k]
    for k in range(8):
        state[line + 12 + k] = obs[k]
    return parts, area


def _store(state: np.ndarray, start: int, numbers: np.ndarray, what: str) -> None:
    if numbers.shape[0] > CAPACITY:
        raise RuntimeError(f"ConwipLine: the episode needs {numbers.shape[0]} {what}, more than the state holds "
                           f"({CAPACITY}); raise CAPACITY in npppo/envs/conwip_line.py")
    state[start : start + numbers.shape[0]] = numbers


def conwip_reset(params, state, rng, obs):
    """Draw the episode's random numbers from four streams seeded by ``rng``, run the warm-up."""
    arrival_rng, m1_rng, m2_rng, cap_rng = (np.random.default_rng(s) for s in rng.integers(0, 2**63, size=4))
    # enough numbers to cover the horizon: a machine starts at most one part per processing
    # time, and the order after the last one needed arrives beyond HORIZON
    gaps = _draw_covering(arrival_rng, _gaps, HORIZON)
    state[:] = 0.0
    _store(state, GAPS, gaps, "order gaps")
    _store(state, ARRIVALS, np.cumsum(gaps), "order gaps")
    _store(state, M1_TIMES, _draw_covering(m1_rng, _service, HORIZON + SERVICE_MAX), "machine-1 times")
    _store(state, M2_TIMES, _draw_covering(m2_rng, _service, HORIZON + SERVICE_MAX), "machine-2 times")
    warmup_caps = cap_rng.integers(1, MAX_CAP, size=WARMUP_CAPS, endpoint=False)
    for cap in warmup_caps:
        _advance(state, LINE, int(cap))
    state[WARMUP_CAP] = warmup_caps[-1]
    if params[TWIN_MODE]:
        state[TWIN : TWIN + 20] = state[LINE : LINE + 20]
        state[TWIN_RELEASES : TWIN_RELEASES + CAPACITY] = state[RELEASES : RELEASES + CAPACITY]
    obs[:] = state[LINE + 12 : LINE + 20]


@njit
def conwip_step(params, state, action, obs):
    """One decision: cap = int(clip(action, 0, 100)), 30 time units of the line (and of its twin)."""
    if state[STEPS] >= DECISIONS:
        raise RuntimeError("ConwipLine: call reset() before step() (the episode has ended or not begun)")
    value = action[0]
    if value != value:
        raise ValueError("ConwipLine: the action is NaN; a cap must be a number (clipped to 0..100)")
    cap = int(min(max(value, 0.0), float(MAX_CAP)))
    parts, area = _advance(state, LINE, cap)
    wip = area / EPOCH
    state[STEPS] += 1
    state[CAP], state[PARTS], state[WIP] = cap, parts, wip
    if params[TWIN_MODE]:
        twin_parts, twin_area = _advance(state, TWIN, int(params[TWIN_CAP]))
        twin_wip = twin_area / EPOCH
        state[TWIN_PARTS], state[TWIN_WIP] = twin_parts, twin_wip
        reward = (parts - twin_parts) + (twin_wip - wip)
    else:
        reward = parts - params[WIP_COST] * wip
    for k in range(8):
        obs[k] = state[LINE + 12 + k]
    return reward, False, state[STEPS] == DECISIONS


class ConwipLineEnv(CompiledEnv):
    """A two-machine CONWIP flow line whose WIP cap is set every 30 time units.

    Orders arrive with gaps max(0, X), X ~ Normal(1, 20) (48 % of gaps are 0, rate ≈ 0.118 per time
    unit) and wait in an order queue; CONWIP releases the head order whenever WIP < cap. Each machine
    takes Uniform(0, 20) per part (rate 0.1), so the order queue grows and throughput stays below 0.1.
    WIP counts the parts in buffers 1-2 and on machines 1-2, not the order queue.

    Episode: ``reset()`` runs a warm-up from t = 0 to 120 with random integer caps in 1..99 set at
    t = 0, 30, 60, 90; then 99 decisions at t = 120, 150, ..., 3060. Each ``step`` applies
    cap = int(clip(action, 0, 100)) (0 releases nothing), simulates 30 time units and reports them;
    the 99th step returns ``truncated=True`` (t = 3090). ``terminated`` is always False.

    Observation, float32 (8,), raw units, each over the 30 time units just simulated (the reset
    observation describes the last warm-up epoch, t = 90..120):

    0. mean WIP of the six samples at t + 5, ..., t + 30 (parts);
    1. mean gap between the orders that arrived (time units);
    2. sample standard deviation of those gaps (0 with a single gap);
    3. share of the six sampling instants at which machine 1 was busy (0..1);
    4. the same for machine 2;
    5. mean processing time of the parts that finished on machine 1 (time units);
    6. the same for machine 2;
    7. the cap in force during the epoch.

    A feature with no event in the epoch (no arrival for 1-2, no part finished for 5-6) keeps its
    previous value (0 at the start). They replace the original's bias-corrected moving averages
    (β = 0.9, restarted each decision) with plain window means: the same information without the
    original's quirks.

    Reward (``reward=``):

    * ``"standalone"`` (default): parts completed in the epoch − ``wip_cost`` × time-average WIP of
      the epoch. Orders are almost always waiting, so WIP sits at the cap and the reward trades the
      throughput a larger cap buys against ``wip_cost`` per part held for an epoch. The default
      ``wip_cost=0.02`` is read off the fixed-cap curve measured by ``scripts/conwip_baselines.py``
      (20 evaluation episodes, reset seeds 10000..10019): throughput is 0.052 at cap 1, 0.092 at 5,
      0.095 at 9 and flat at 0.096 from about 19 on, and its slope, 30 × Δthroughput / ΔWIP (parts
      per epoch per extra part held), falls through 0.02 between caps 7 and 9. So the best fixed cap
      is 8, inside 3..30, with caps 1 and 100 clearly worse (docs/results.md, "ConwipLine-v0").
    * ``"twin"``: (parts − twin's parts) + (twin's time-average WIP − this line's), where the twin
      is the same line under the fixed cap ``twin_cap`` driven by the same random numbers (same
      arrivals, warm-up caps and per-part processing times); with the agent's cap equal to
      ``twin_cap`` every reward is exactly 0.

    ``info`` at each step: ``cap``; ``parts`` (completed in the epoch); ``wip`` (time-average in the
    epoch); ``throughput`` (parts per time unit since t = 120); ``lead_time`` (order arrival → exit)
    and ``flow_time`` (release → exit), means over the parts completed since t = 120 (NaN before the
    first); ``order_queue`` (orders waiting); in twin mode also ``twin_parts`` and ``twin_wip``.
    ``reset`` returns the last warm-up cap and the order queue. :meth:`line_state` tells where every
    part is (for tests and inspection).

    Random numbers: ``reset(seed=...)`` seeds four independent streams (arrivals, machine-1 times,
    machine-2 times, warm-up caps) from the environment's generator.
    """

    REWARD_MODES = ("standalone", "twin")

    def __init__(self, reward: str = "standalone", wip_cost: float = 0.02, twin_cap: int = MAX_CAP) -> None:
        if reward not in self.REWARD_MODES:
            raise ValueError(f"ConwipLine: unknown reward mode {reward!r}: choose one of {list(self.REWARD_MODES)}")
        if isinstance(wip_cost, bool) or not isinstance(wip_cost, (int, float)) or not np.isfinite(wip_cost) \
                or wip_cost < 0:
            raise ValueError(f"ConwipLine: wip_cost must be a finite number >= 0, got {wip_cost!r}")
        if isinstance(twin_cap, bool) or not isinstance(twin_cap, (int, np.integer)) or not 0 <= twin_cap <= MAX_CAP:
            raise ValueError(f"ConwipLine: twin_cap must be an integer cap in 0..{MAX_CAP}, got {twin_cap!r}")
        self.reward_mode = reward
        self.wip_cost = float(wip_cost)
        self.twin_cap = int(twin_cap)
        params = np.array([reward == "twin", self.wip_cost, self.twin_cap], np.float64)
        super().__init__(CompiledSpec(reset=conwip_reset, step=conwip_step, params=params, state_size=STATE_SIZE,
                                      obs_low=np.zeros(8), obs_high=np.full(8, np.inf),
                                      action_low=np.array([0.0]), action_high=np.array([float(MAX_CAP)])))

    # ------------------------------------------------------------------ gymnasium's info
    def reset_info(self) -> dict:
        return {"cap": int(self.state[WARMUP_CAP]), "order_queue": self._order_queue()}

    def step_info(self) -> dict:
        state = self.state
        counts, clocks = state[LINE : LINE + 7], state[LINE + 7 : LINE + 12]
        measured = int(counts[DONE] - counts[DONE_BEFORE])
        info = {
            "cap": int(state[CAP]), "parts": int(state[PARTS]), "wip": float(state[WIP]),
            "throughput": measured / float(clocks[TIME] - WARMUP_END),
            "lead_time": float(clocks[SUM_LEAD]) / measured if measured else np.nan,
            "flow_time": float(clocks[SUM_FLOW]) / measured if measured else np.nan,
            "order_queue": self._order_queue(),
        }
        if self.reward_mode == "twin":
            info["twin_parts"], info["twin_wip"] = int(state[TWIN_PARTS]), float(state[TWIN_WIP])
        return info

    def _order_queue(self) -> int:
        return int(self.state[LINE + ARRIVED] - self.state[LINE + RELEASED])

    def line_state(self) -> dict[str, int | float]:
        """Where every part is right now (counts since t = 0), for tests and inspection."""
        if not self._started:
            raise RuntimeError("ConwipLine: call reset() first")
        c = self.state[LINE : LINE + 7].astype(np.int64)
        return {
            "time": float(self.state[LINE + 7 + TIME]), "arrived": int(c[ARRIVED]), "released": int(c[RELEASED]),
            "completed": int(c[DONE]), "order_queue": int(c[ARRIVED] - c[RELEASED]),
            "buffer1": int(c[RELEASED] - c[M1_STARTED]), "machine1": int(c[M1_STARTED] - c[M1_DONE]),
            "buffer2": int(c[M1_DONE] - c[M2_STARTED]), "machine2": int(c[M2_STARTED] - c[DONE]),
        }
