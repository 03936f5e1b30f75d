"""The README's quick start stays true: two commands, and CI runs the second one verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def quick_start_lines() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Quick start\s+```bash\n(.*?)```", readme, re.S)
    assert block, "README.md must open with a 'Quick start' section holding a bash block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_has_exactly_two_commands():
    lines = quick_start_lines()
    assert len(lines) == 2
    assert "npppo train" in lines[0]
    assert "pytest" in lines[1]


def test_ci_runs_both_quick_start_lines_verbatim_and_in_order():
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    first, second = quick_start_lines()
    assert first in ci and second in ci
    assert ci.index(first) < ci.index(second)
    assert "ruff check npppo tests scripts" in ci
    assert ci[1].startswith("# CI") and "set -euo pipefail" in ci  # any failing command fails CI


def python_block(section: str) -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(rf"## {re.escape(section)}\n.*?```python\n(.*?)```", readme, re.S)
    assert block, f"README.md has no python block under '## {section}'"
    return block.group(1)


def test_the_python_snippets_run_as_written(tmp_path):
    """The 'Python API' snippet, then the 'Embedding' one (which loads what the first saved), verbatim,
    in a fresh interpreter in an empty folder: nothing undefined, nothing substituted."""
    import subprocess
    import sys

    api, embedding = python_block("Python API"), python_block("Embedding a trained policy")
    check = (
        "\nassert len(history) >= 1 and agent.num_timesteps >= 10_000\n"
        "assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0\n"
        "import math; assert math.isfinite(mean) and math.isfinite(std)\n"
    )
    done = subprocess.run([sys.executable, "-c", api + check + embedding + "\nassert math.isfinite(float(value))\n"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()  # progress=True: one plain progress line per iteration (not a terminal)
    assert lines and all(re.fullmatch(r"iter +\d+  steps [\d,]+/10,000  return +-?[\d.]+  [\d,]+ steps/s  left "
                                      r"(\?|\d+:\d\d:\d\d)", line) for line in lines), done.stdout
    assert lines[0].endswith("left ?") and lines[-1].endswith("left 0:00:00")
    assert (tmp_path / "runs" / "pendulum" / "model.npz").is_file()
