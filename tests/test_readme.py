"""The README stays true: its two quick-start lines (run in order by .ci/run), its Python snippets (run
here as written), its console example (run here at small scale, every line's shape checked), its layout."""

import re
from pathlib import Path

import pytest

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


CONSOLE_STEPS = "6000"  # the README's commands run at this many steps (three iterations of the pendulum preset)


def shape(line: str) -> str:
    """A printed line with its numbers, their alignment and a worker count's plural made generic."""
    line = re.sub(r"\s+", " ", re.sub(r"-?\d[\d,]*(\.\d+)?", "N", line))
    return re.sub(r"\bworkers?\b", "worker(s)", line)


def console_example() -> list[tuple[str, list[str]]]:
    """[(command, printed lines)] of the README's console block."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## Command line\n.*?```console\n(.*?)```", readme, re.S)
    assert block, "README.md has no console block under '## Command line'"
    steps: list[tuple[str, list[str]]] = []
    for line in block.group(1).splitlines():
        if line.startswith("$ "):
            steps.append((line[2:].split("#")[0].strip(), []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_console_example_prints_lines_of_the_shapes_shown(tmp_path, monkeypatch, capsys):
    """Each command of the README's console example, run at CONSOLE_STEPS steps in an empty folder,
    prints lines of the same shapes as the README shows (numbers aside; "..." stands for lines of
    the shape before it)."""
    import shlex

    from npppo.cli import main
    from npppo.warmup import COMPILING_LINE

    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("npppo.backends.usable_cores", lambda: 2)  # the example's machine: 2 cores
    for command, expected in console_example():
        argv = shlex.split(command)
        assert argv[0] == "npppo"
        argv = [CONSOLE_STEPS if k > 0 and argv[k - 1] == "--steps" else arg for k, arg in enumerate(argv)]
        assert main(argv[1:]) == 0, command
        captured = capsys.readouterr()
        # the README says this line appears whenever kernels are compiled (here: if the cache is cold)
        printed = [line for line in (captured.out + captured.err).splitlines() if line != COMPILING_LINE]
        got = [shape(line) for line in printed]
        want = [shape(line) for line in expected]
        k = 0
        for n, line in enumerate(want):
            if line == "...":  # lines of the shape before or after it, up to the last of the shape after it
                while k + 1 < len(got) and got[k + 1] == want[n + 1] and got[k] in (want[n - 1], want[n + 1]):
                    k += 1
                continue
            assert k < len(got) and got[k] == line, f"{command}: expected a line like\n  {expected[n]}\ngot\n  " + (
                printed[k] if k < len(got) else "(nothing more)") + "\nin:\n" + "\n".join(printed)
            k += 1
        assert k == len(got), f"{command}: printed more than the README shows:\n" + "\n".join(printed[k:])


def test_the_layout_table_lists_every_module_and_only_existing_ones():
    readme = (ROOT / "README.md").read_text()
    table = re.search(r"## Layout\n(.*?)\n\n", readme, re.S).group(1)
    named = set(re.findall(r"`(npppo/[\w/]+(?:\.py)?/?)`", table))
    for path in named:
        assert (ROOT / path).exists(), f"README's layout table names {path}, which does not exist"
    for module in sorted((ROOT / "npppo").rglob("*.py")):
        relative = module.relative_to(ROOT).as_posix()
        if module.name == "__init__.py" and relative != "npppo/__init__.py":
            continue
        covered = relative in named or any(p.endswith("/") and relative.startswith(p) for p in named)
        assert covered or relative == "npppo/__init__.py", f"README's layout table does not list {relative}"
