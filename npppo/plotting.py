"""Learning curves from ``progress.csv``: mean episode return against env steps.

One run is drawn as its curve; several runs (e.g. seeds) as their mean with a min-max band, each run
faint behind it. The curves are interpolated onto a common grid of env steps (whole-episode batches
end at slightly different step counts in different runs). Periodic deterministic evaluations
(``eval_mean``, from ``npppo train --eval-every``) are drawn as points, and a threshold as a dashed
line. Matplotlib is an optional extra: ``pip install 'npppo[plot]'``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from npppo.errors import NpppoError
from npppo.progress import read_progress


def expand_runs(run_dirs: list[str | Path]) -> list[Path]:
    """The run folders meant: a folder without ``progress.csv`` that holds ``seed_*`` run folders (from
    ``npppo train --seeds``) stands for those, in seed order."""
    runs: list[Path] = []
    for run_dir in map(Path, run_dirs):
        seeds = [] if (run_dir / "progress.csv").exists() else [
            d for d in run_dir.glob("seed_*") if d.is_dir() and d.name[5:].isdigit()]
        runs += sorted(seeds, key=lambda d: int(d.name[5:])) or [run_dir]
    return runs


def load_curve(run_dir: str | Path, column: str = "return_mean") -> tuple[np.ndarray, np.ndarray]:
    """(env steps, ``column``), each (iterations with a value,), of the run in ``run_dir``."""
    path = Path(run_dir)
    path = path / "progress.csv" if path.is_dir() else path
    if not path.is_file():
        raise NpppoError(f"{path} does not exist: pass run folders written by `npppo train`")
    rows, fields = read_progress(path)
    missing = {"steps", "return_mean"} - set(fields)
    if missing:
        raise NpppoError(f"{path} has no column(s) {sorted(missing)}: it is not an npppo progress.csv")
    steps = np.array([float(row["steps"]) for row in rows])
    values = np.array([float(row.get(column) or math.nan) for row in rows])
    keep = np.isfinite(values)  # fixed-step batches can end an iteration with no finished episode
    if column == "return_mean" and not np.any(keep):
        raise NpppoError(f"{path} has no finished episodes yet: nothing to plot")
    return steps[keep], values[keep]


def plot_runs(run_dirs: list[str | Path], out: str | Path, title: str | None = None,
              threshold: float | None = None) -> Path:
    """Draw the runs' learning curves (training return, and evaluations where there are any) into the
    PNG ``out``, with ``threshold`` as a dashed line; returns its path."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise NpppoError("plotting needs matplotlib, an optional extra: pip install 'npppo[plot]'") from exc
    curves = [load_curve(d) for d in run_dirs]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    if len(curves) == 1:
        steps, returns = curves[0]
        axes.plot(steps, returns, color="C0", label=Path(run_dirs[0]).name)
    else:
        end = min(steps[-1] for steps, _ in curves)
        start = max(steps[0] for steps, _ in curves)
        grid = np.linspace(start, end, 200)
        stacked = np.array([np.interp(grid, steps, returns) for steps, returns in curves])
        for steps, returns in curves:
            axes.plot(steps, returns, color="C0", alpha=0.2, linewidth=0.8)
        axes.fill_between(grid, stacked.min(axis=0), stacked.max(axis=0), color="C0", alpha=0.2,
                          label="min-max")
        axes.plot(grid, stacked.mean(axis=0), color="C0", linewidth=2, label=f"mean of {len(curves)} runs")
    for k, run_dir in enumerate(run_dirs):
        steps, evals = load_curve(run_dir, "eval_mean")
        if steps.size:
            axes.plot(steps, evals, "o", ms=3.5, color=f"C{2 + k % 8}",
                      label=f"deterministic eval, {Path(run_dir).name}")
    if threshold is not None:
        axes.axhline(threshold, color="k", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    axes.set_xlabel("env steps")
    axes.set_ylabel("episode return (training, stochastic policy)")
    axes.set_title(title or ", ".join(Path(d).name for d in run_dirs[:3]) + (" ..." if len(run_dirs) > 3 else ""),
                   fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=7)
    figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
