"""Mutation testing for npppo: small, realistic bugs put into the code one at a time; the tests
should catch (kill) each one.

    python scripts/mutation.py --list                          # the mutants, nothing run
    nice -n 10 python scripts/mutation.py --max-mutants 20 --seed 0 --report mutation-pilot.json
    python scripts/mutation.py --modules ppo,backends/local --max-mutants 0   # every mutant of two modules
    python scripts/mutation.py --mutant npppo/ppo.py:239:12:compare   # re-run chosen mutants

A module is named by its path under npppo/ without ".py" (``sampler``, ``backends/__init__``,
``envs/make``).

Why a harness of our own: the hot code is Numba-compiled with ``cache=True``. Numba's on-disk
cache is keyed by the source file's path and its (mtime, size) stamp, and a cached kernel that
calls or inlines another carries a copy of it, so a tool that mutates files in place can run a stale
kernel and report a mutant as surviving when it was never executed. Here:

* every mutant is applied to a copy of the tree (made once per run under ``--workdir``; the
  working tree is never written), and the original file is put back with its original mtime;
* a mutant inside compiled code (an ``@njit`` function, or module-level code of a file that has
  ``@njit`` functions, whose globals Numba freezes into the kernels) runs with a fresh, empty
  ``NUMBA_CACHE_DIR``; the others share one cache, warmed by the baseline run;
* each module has its own list of test files (the fastest, most specific first; pytest stops at
  the first failure), and each mutant a timeout.

Mutation operators (AST-based, minimal textual edits): arithmetic operators swapped (+ -, * /, //,
**, %), augmented assignments swapped, comparisons moved across their boundary (< <=, > >=) or
flipped (== !=, is / is not, in / not in), and / or, ``not`` removed, unary minus removed, if /
while / conditional-expression conditions negated, numeric constants changed (0 -> 1, n -> n + 1,
x -> 2x), True <-> False, min <-> max, the first two positional arguments of a call swapped, and
statements removed (calls, assignments to attributes or items, augmented assignments, raise,
break, continue). Not mutated: docstrings and strings, decorators, annotations, and lines marked
``# pragma: no mutate``.

Outcomes: ``killed`` (a test failed, or the mutant did not even import), ``timeout`` (counted as
detected), ``survived``. The JSON report lists every mutant with file:line, operator, the diff and
its outcome; the score is (killed + timeout) / mutants run, and is also given over the mutants
not known to be equivalent: a survivor listed in ``scripts/mutation_equivalent.json`` (matched by
file and by the changed line's text, before and after, so line moves do not matter) leaves the
denominator. Each entry there says why the mutant cannot change behaviour.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The modules under test and the test files run for a mutant in each (fastest and most specific
# first, since pytest stops at the first failure). Adding a module is one line. tests/test_backends_ray.py is
# in no list: it starts a Ray cluster (tens of seconds, more with a fresh Numba cache in every Ray
# worker), and the code it reaches in npppo/backends/__init__.py is the local workers' too, which
# tests/test_backends_local.py checks bit for bit; npppo/backends/ray.py itself is not mutated.
COMMON = ["tests/test_ppo_wiring.py", "tests/test_golden.py"]
MODULES: dict[str, list[str]] = {
    "npppo/ppo.py": ["tests/test_ppo_wiring.py", "tests/test_checkpoint.py", "tests/test_ppo.py",
                     "tests/test_resume.py", "tests/test_errors.py", "tests/test_golden.py", "tests/test_envs.py",
                     "tests/test_backends_local.py"],
    "npppo/sampler.py": ["tests/test_sampler.py", *COMMON, "tests/test_resume.py", "tests/test_errors.py",
                         "tests/test_checkpoint.py", "tests/test_backends_local.py"],
    "npppo/backends/__init__.py": ["tests/test_ppo_wiring.py", "tests/test_checkpoint.py", "tests/test_golden.py",
                                   "tests/test_errors.py", "tests/test_backends_local.py"],
    "npppo/backends/local.py": ["tests/test_backends_local.py", "tests/test_warmup.py"],
    "npppo/envs/make.py": ["tests/test_envs.py", "tests/test_errors.py", "tests/test_ppo_wiring.py",
                           "tests/test_checkpoint.py", "tests/test_cli.py", "tests/test_backends_local.py"],
    "npppo/returns.py": ["tests/test_returns.py", *COMMON],
    "npppo/losses.py": ["tests/test_losses.py", *COMMON],
    "npppo/optim.py": ["tests/test_optim.py", *COMMON, "tests/test_checkpoint.py"],
    "npppo/checkpoint.py": ["tests/test_checkpoint.py", "tests/test_resume.py", "tests/test_errors.py",
                            "tests/test_inference.py", "tests/test_cli.py"],
    "npppo/normalization.py": ["tests/test_normalization.py", "tests/test_ppo_wiring.py", "tests/test_checkpoint.py",
                               "tests/test_inference.py"],
    "npppo/config.py": ["tests/test_config.py", "tests/test_config_reference.py", "tests/test_errors.py",
                        "tests/test_ppo_wiring.py"],
    "npppo/policy.py": ["tests/test_policy.py", "tests/test_layers.py", "tests/test_losses.py", *COMMON,
                        "tests/test_sampler.py", "tests/test_inference.py", "tests/test_ppo.py"],
    "npppo/critic.py": ["tests/test_critic.py", "tests/test_losses.py", *COMMON, "tests/test_inference.py"],
    # inference.py holds the NumPy references the kernel tests compare with
    "npppo/inference.py": ["tests/test_inference.py", "tests/test_distributions.py", "tests/test_activations.py",
                           "tests/test_layers.py", "tests/test_policy.py", "tests/test_critic.py",
                           "tests/test_losses.py", "tests/test_sampler.py", *COMMON],
    "npppo/evaluation.py": ["tests/test_evaluation.py", "tests/test_ppo_wiring.py", "tests/test_cli.py"],
    "npppo/train.py": ["tests/test_train.py", "tests/test_cli.py", "tests/test_errors.py",
                       "tests/test_learning_curves.py", "tests/test_bench.py"],
    "npppo/interrupts.py": ["tests/test_interrupts.py", "tests/test_train.py", "tests/test_cli.py"],
    "npppo/run_folder.py": ["tests/test_cli.py", "tests/test_errors.py", "tests/test_seeds.py"],
    "npppo/passes.py": ["tests/test_passes.py", *COMMON, "tests/test_fused_update.py", "tests/test_ppo.py",
                        "tests/test_backends_local.py"],
    "npppo/backends/rollout.py": ["tests/test_backends_local.py", "tests/test_resume.py", "tests/test_checkpoint.py",
                                  *COMMON],
    "npppo/fused_update.py": ["tests/test_fused_update.py", *COMMON, "tests/test_warmup.py"],
    "npppo/warmup.py": ["tests/test_warmup.py", "tests/test_backends_local.py"],
}
# slow or timing-dependent tests left out of every mutant's run (they are in the normal suite)
DESELECT = [
    "tests/test_ppo.py::test_pendulum_preset_learns_to_swing_up_in_its_100k_steps",
    "tests/test_cli.py::test_ctrl_c_saves_the_last_iteration_and_resume_finishes_the_run_exactly",
    "tests/test_cli.py::test_sigterm_saves_the_last_iteration_exits_143_and_says_how_to_resume",
    "tests/test_cli.py::test_a_run_killed_before_its_first_checkpoint_is_restarted_by_resume_and_then_refused_by_out",
    "tests/test_backends_local.py::test_no_worker_outlives_a_cli_run_a_failed_run_or_ctrl_c",
    "tests/test_bench.py::test_quick_bench_writes_every_figure",
]


def module_name(rel: str) -> str:
    """``npppo/backends/local.py`` -> ``backends/local``: how --modules names a module."""
    return rel.removeprefix("npppo/").removesuffix(".py")


COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", "runs", "*.egg-info", ".pytest_cache",
                                     ".ruff_cache", "mutation*.json")
PRAGMA = "pragma: no mutate"


# ------------------------------------------------------------------ finding mutants


@dataclass
class Mutant:
    id: str  # file:line:col:operator[:k], stable while the file is unchanged
    file: str
    line: int
    operator: str
    description: str
    compiled: bool  # inside Numba-compiled code: runs with an empty NUMBA_CACHE_DIR
    source: str = field(repr=False, default="")  # the whole mutated file
    diff: str = ""


class _Source:
    """A file's text with (line, byte column) addressing, as the ast module reports positions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lines = text.encode().splitlines(keepends=True)

    def offset(self, line: int, col: int) -> int:
        return sum(len(x) for x in self.lines[: line - 1]) + col

    def segment(self, start: tuple[int, int], end: tuple[int, int]) -> str:
        data = b"".join(self.lines)
        return data[self.offset(*start) : self.offset(*end)].decode()

    def replace(self, start: tuple[int, int], end: tuple[int, int], new: str) -> str:
        data = b"".join(self.lines)
        return (data[: self.offset(*start)] + new.encode() + data[self.offset(*end) :]).decode()


def _start(node: ast.AST) -> tuple[int, int]:
    return node.lineno, node.col_offset


def _end(node: ast.AST) -> tuple[int, int]:
    return node.end_lineno, node.end_col_offset


BINOP_SWAPS = {ast.Add: ("+", "-"), ast.Sub: ("-", "+"), ast.Mult: ("*", "/"), ast.Div: ("/", "*"),
               ast.FloorDiv: ("//", "/"), ast.Pow: ("**", "*"), ast.Mod: ("%", "//")}
COMPARE_SWAPS = {ast.Lt: ("<", "<="), ast.LtE: ("<=", "<"), ast.Gt: (">", ">="), ast.GtE: (">=", ">"),
                 ast.Eq: ("==", "!="), ast.NotEq: ("!=", "=="), ast.Is: ("is", "is not"),
                 ast.IsNot: ("is not", "is"), ast.In: ("in", "not in"), ast.NotIn: ("not in", "in")}


def _is_njit(func: ast.FunctionDef) -> bool:
    for decorator in func.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("njit", "jit", "vectorize", "guvectorize"):
            return True
    return False


def _is_text(node: ast.AST) -> bool:
    """A string literal, or an expression joining them (a message: mutating it only breaks the text)."""
    if isinstance(node, (ast.Constant, ast.JoinedStr)):
        return isinstance(node, ast.JoinedStr) or isinstance(node.value, str)
    if isinstance(node, ast.BinOp):
        return _is_text(node.left) or _is_text(node.right)
    if isinstance(node, ast.IfExp):
        return _is_text(node.body) and _is_text(node.orelse)
    return False


def _skipped_nodes(tree: ast.Module) -> set[int]:
    """ids of nodes never mutated: decorators, annotations, docstrings,
    raise statements' arguments (error messages)."""
    skip: set[int] = set()

    def mark(node):
        for sub in ast.walk(node):
            skip.add(id(sub))

    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                mark(decorator)
            if node.returns is not None:
                mark(node.returns)
            for arg in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                if arg.annotation is not None:
                    mark(arg.annotation)
        elif isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                mark(decorator)
        elif isinstance(node, ast.AnnAssign):
            mark(node.annotation)
        elif isinstance(node, ast.Raise) and node.exc is not None:
            mark(node.exc)
        elif isinstance(node, ast.JoinedStr):
            mark(node)
        elif isinstance(node, ast.keyword) and node.arg in ("strict", "stacklevel"):
            mark(node.value)  # zip(strict=True) on equal lengths, warning stack levels: equivalent
    return skip


def _between(src: _Source, left: ast.AST, right: ast.AST, token: str) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """(start, end) of the operator ``token`` in the source between two operand nodes."""
    text = src.segment(_end(left), _start(right))
    # skip closing brackets of the left operand, then whitespace and line continuations
    index = 0
    while index < len(text) and text[index] in ") \t\\\n]":
        index += 1
    if not text[index:].startswith(token):
        return None
    before = text[:index].encode()
    line, col = _end(left)
    newlines = before.count(b"\n")
    if newlines:
        line += newlines
        col = len(before) - before.rfind(b"\n") - 1
    else:
        col += len(before)
    return (line, col), (line, col + len(token.encode()))


def find_mutants(path: Path, rel: str) -> list[Mutant]:
    text = path.read_text()
    src = _Source(text)
    tree = ast.parse(text)
    skip = _skipped_nodes(tree)
    has_njit = any(isinstance(n, ast.FunctionDef) and _is_njit(n) for n in ast.walk(tree))
    lines = text.splitlines()

    # which function each node is in (for "compiled")
    compiled_nodes: set[int] = set()
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for sub in ast.walk(node):
                in_function.add(id(sub))
                if _is_njit(node):
                    compiled_nodes.add(id(sub))

    mutants: list[Mutant] = []
    original_dump = ast.dump(tree)

    def add(node: ast.AST, operator: str, description: str, new_text: str) -> None:
        if PRAGMA in lines[node.lineno - 1]:
            return
        try:
            new_tree = ast.parse(new_text)
        except SyntaxError:
            return
        if ast.dump(new_tree) == original_dump:
            return
        compiled = id(node) in compiled_nodes or (has_njit and id(node) not in in_function)
        base = f"{rel}:{node.lineno}:{node.col_offset}:{operator}"
        count = sum(1 for m in mutants if m.id.split(":", 4)[:4] == base.split(":", 4)[:4])
        diff = "".join(difflib.unified_diff(text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                            f"a/{rel}", f"b/{rel}", n=1))
        mutants.append(Mutant(base + (f":{count}" if count else ""), rel, node.lineno, operator, description,
                              compiled, new_text, diff))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp) and type(node.op) in BINOP_SWAPS and not _is_text(node):
            old, new = BINOP_SWAPS[type(node.op)]
            span = _between(src, node.left, node.right, old)
            if span:
                add(node, "binop", f"{old} -> {new}", src.replace(*span, new))
        elif isinstance(node, ast.AugAssign) and type(node.op) in BINOP_SWAPS:
            old, new = BINOP_SWAPS[type(node.op)]
            span = _between(src, node.target, node.value, old + "=")
            if span:
                add(node, "augassign", f"{old}= -> {new}=", src.replace(*span, new + "="))
        elif isinstance(node, ast.Compare):
            left = node.left
            for op, right in zip(node.ops, node.comparators, strict=True):
                if type(op) in COMPARE_SWAPS:
                    old, new = COMPARE_SWAPS[type(op)]
                    span = _between(src, left, right, old)
                    if span:
                        add(node, "compare", f"{old} -> {new}", src.replace(*span, new))
                left = right
        elif isinstance(node, ast.BoolOp):
            old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
            span = _between(src, node.values[0], node.values[1], old)
            if span:
                add(node, "boolop", f"{old} -> {new}", src.replace(*span, new))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
            operand = src.segment(_start(node.operand), _end(node.operand))
            add(node, "unary", f"remove {'not' if isinstance(node.op, ast.Not) else 'unary -'}",
                src.replace(_start(node), _end(node), f"({operand})"))
        elif isinstance(node, (ast.If, ast.While, ast.IfExp)) and id(node.test) not in skip and not _is_text(node):
            test = src.segment(_start(node.test), _end(node.test))
            add(node.test, "negate", f"negate condition {test[:40]!r}",
                src.replace(_start(node.test), _end(node.test), f"not ({test})"))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
            value = node.value
            if isinstance(value, bool):
                new_value = repr(not value)
            elif isinstance(value, int):
                new_value = repr(value + 1)
            else:
                new_value = repr(value * 2.0 if value != 0 else 1.0)
            add(node, "constant", f"{src.segment(_start(node), _end(node))} -> {new_value}",
                src.replace(_start(node), _end(node), new_value))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("min", "max"):
                add(node, "minmax", f"{func.id} -> {'max' if func.id == 'min' else 'min'}",
                    src.replace(_start(func), _end(func), "max" if func.id == "min" else "min"))
            positional = [a for a in node.args if not isinstance(a, ast.Starred)]
            if len(positional) >= 2 and positional[:2] == node.args[:2]:
                first, second = positional[0], positional[1]
                a, b = src.segment(_start(first), _end(first)), src.segment(_start(second), _end(second))
                if a != b and not (_is_text(first) or _is_text(second)):
                    middle = src.segment(_end(first), _start(second))
                    add(node, "swap_args", f"swap arguments {a[:20]!r}, {b[:20]!r}",
                        src.replace(_start(first), _end(second), b + middle + a))
        if isinstance(node, ast.stmt) and id(node) in in_function:
            removable = (
                (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call))
                or isinstance(node, (ast.AugAssign, ast.Raise, ast.Break, ast.Continue))
                or (isinstance(node, ast.Assign)
                    and all(isinstance(t, (ast.Attribute, ast.Subscript)) for t in node.targets))
            )
            if removable:
                first_line = src.segment(_start(node), _end(node)).splitlines()[0]
                add(node, "remove", f"remove {first_line[:50]!r}", src.replace(_start(node), _end(node), "pass"))
    return mutants


def all_mutants(modules: list[str]) -> list[Mutant]:
    found = []
    for rel in modules:
        found.extend(find_mutants(ROOT / rel, rel))
    return found


# ------------------------------------------------------------------ running them


def _run_tests(tree: Path, tests: list[str], cache_dir: Path, timeout: float) -> tuple[str, float, str]:
    """(outcome, seconds, last output line) of pytest on ``tests`` in the copy at ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(cache_dir), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NPPPO_UPDATE_GOLDEN", None)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-W", "ignore",
               *[f"--deselect={d}" for d in DESELECT], *tests]
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return "timeout", time.monotonic() - start, ""
    seconds = time.monotonic() - start
    last = output.strip().splitlines()[-1] if output.strip() else ""
    if process.returncode == 0:
        return "survived", seconds, last
    if process.returncode == 5:
        raise RuntimeError(f"no tests collected for {tests}: {last}")
    return "killed", seconds, last


EQUIVALENT_FILE = Path(__file__).with_name("mutation_equivalent.json")


def _changed_lines(mutant: Mutant) -> tuple[str, str]:
    """(the line as it was, the line as mutated), stripped: what a known equivalent mutant is
    recognised by, so that the list survives code moving up or down."""
    body = mutant.diff.splitlines()[2:]  # after the ---/+++ header
    removed = [line[1:].strip() for line in body if line.startswith("-")]
    added = [line[1:].strip() for line in body if line.startswith("+")]
    return " ".join(removed), " ".join(added)


def load_equivalent() -> list[dict]:
    """Known equivalent mutants: [{file, before, after, reason}], kept in mutation_equivalent.json."""
    return json.loads(EQUIVALENT_FILE.read_text()) if EQUIVALENT_FILE.exists() else []


def equivalent_reason(mutant: Mutant, known: list[dict]) -> str | None:
    before, after = _changed_lines(mutant)
    for entry in known:
        if entry["file"] == mutant.file and entry["before"] == before and entry["after"] == after:
            return entry["reason"]
    return None


def _prepare(workdir: Path) -> Path:
    tree = workdir / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(ROOT, tree, ignore=COPY_IGNORE)
    check = subprocess.run([sys.executable, "-c", "import npppo; print(npppo.__file__)"], cwd=tree,
                           env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True)
    if not Path(check.stdout.strip()).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the copy's tests would import npppo from {check.stdout.strip()}, not from {tree}")
    return tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", default=",".join(map(module_name, MODULES)),
                        help="comma-separated module names (default: all of %(default)s)")
    parser.add_argument("--max-mutants", type=int, default=None,
                        help="sample this many mutants, 0 for all (default: 300 to run, all to --list)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--mutant", action="append", default=[], help="run only this mutant id (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per mutant (default: 5 x the module's baseline + 60, + 150 if compiled)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "npppo-mutation")
    parser.add_argument("--report", type=Path, default=Path("mutation-report.json"))
    args = parser.parse_args(argv)
    if args.max_mutants is None:
        args.max_mutants = 0 if args.list else 300

    wanted = {name.strip() for name in args.modules.split(",") if name.strip()}
    unknown = wanted - set(map(module_name, MODULES))
    if unknown:
        parser.error(f"unknown module(s) {sorted(unknown)}; known: {list(map(module_name, MODULES))}")
    modules = [m for m in MODULES if module_name(m) in wanted]
    mutants = all_mutants(modules)
    total_found = len(mutants)
    if args.mutant:
        chosen = set(args.mutant)
        mutants = [m for m in mutants if m.id in chosen]
        missing = chosen - {m.id for m in mutants}
        if missing:
            parser.error(f"no such mutant(s): {sorted(missing)}")
    elif 0 < args.max_mutants < len(mutants):
        mutants = random.Random(args.seed).sample(mutants, args.max_mutants)
    mutants.sort(key=lambda m: (list(MODULES).index(m.file), m.line, m.id))

    if args.list:
        known = load_equivalent()
        for m in mutants:
            note = " [known equivalent]" if equivalent_reason(m, known) else ""
            print(f"{m.id:55s} {'[njit] ' if m.compiled else ''}{m.description}{note}")
        per_module = {rel: sum(1 for m in mutants if m.file == rel) for rel in modules}
        print(f"{len(mutants)} of {total_found} mutants; compiled: {sum(m.compiled for m in mutants)}; "
              + ", ".join(f"{module_name(k)} {v}" for k, v in per_module.items()))
        return 0

    known = load_equivalent()
    args.workdir.mkdir(parents=True, exist_ok=True)
    tree = _prepare(args.workdir)
    shared_cache = args.workdir / "numba-cache"
    started = time.time()

    # baseline: the unmutated tree passes every module's tests (and warms the shared cache)
    baseline: dict[str, float] = {}
    for rel in sorted({m.file for m in mutants}, key=list(MODULES).index):
        # (the first module's time includes compiling every kernel: its timeouts are only longer)
        outcome, seconds, last = _run_tests(tree, MODULES[rel], shared_cache, timeout=1800)
        if outcome != "survived":
            print(f"baseline tests of {rel} fail on the unmutated tree: {last}", file=sys.stderr)
            return 2
        baseline[rel] = seconds
        print(f"baseline {rel}: {seconds:.1f} s ({len(MODULES[rel])} test files)", flush=True)

    results = []
    for index, mutant in enumerate(mutants, 1):
        target = tree / mutant.file
        original = ROOT / mutant.file
        # generous: on a shared machine a run can take several times its baseline, and a timeout
        # counts as a kill
        timeout = args.timeout or 5 * baseline[mutant.file] + (150 if mutant.compiled else 60)
        target.write_text(mutant.source)
        try:
            if mutant.compiled:
                with tempfile.TemporaryDirectory(prefix="numba-", dir=args.workdir) as fresh:
                    outcome, seconds, last = _run_tests(tree, MODULES[mutant.file], Path(fresh), timeout)
            else:
                outcome, seconds, last = _run_tests(tree, MODULES[mutant.file], shared_cache, timeout)
        finally:
            shutil.copy2(original, target)  # content and mtime: the shared cache stays valid
        results.append({**{k: v for k, v in asdict(mutant).items() if k != "source"}, "outcome": outcome,
                        "equivalent": equivalent_reason(mutant, known), "seconds": round(seconds, 2),
                        "pytest": last})
        print(f"[{index}/{len(mutants)}] {outcome:8s} {seconds:6.1f} s  {mutant.id}  {mutant.description}", flush=True)

    elapsed = time.time() - started
    counts = {k: sum(r["outcome"] == k for r in results) for k in ("killed", "timeout", "survived")}
    detected = counts["killed"] + counts["timeout"]
    score = detected / len(results) if results else float("nan")
    # known equivalent mutants that survive leave the denominator (one that is killed stays a kill:
    # then it was not equivalent after all, and mutation_equivalent.json should lose it)
    equivalent = sum(r["outcome"] == "survived" and r["equivalent"] is not None for r in results)
    non_equivalent = len(results) - equivalent
    score_non_equivalent = detected / non_equivalent if non_equivalent else float("nan")
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "seed": args.seed, "modules": modules, "mutants_found": total_found, "mutants_run": len(results),
        **counts, "score": score, "equivalent_survived": equivalent, "score_non_equivalent": score_non_equivalent,
        "seconds": round(elapsed, 1),
        "seconds_per_mutant": round(elapsed / max(1, len(results)), 2),
        "mutant_seconds_mean": round(sum(r["seconds"] for r in results) / max(1, len(results)), 2),
        "baseline_seconds": baseline,
        "results": results,
    }
    args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nmutation score {score:.1%} ({score_non_equivalent:.1%} of the {non_equivalent} not known to be "
          f"equivalent): {counts['killed']} killed, {counts['timeout']} timed out, {counts['survived']} survived "
          f"({equivalent} known equivalent) of {len(results)} ({total_found} found); {elapsed:.0f} s in all, "
          f"{elapsed / max(1, len(results)):.1f} s per mutant with the baseline, {report['mutant_seconds_mean']:.1f} s "
          f"without; report: {args.report}")
    for r in results:
        if r["outcome"] == "survived":
            note = f"  (equivalent: {r['equivalent']})" if r["equivalent"] else ""
            print(f"  survived {r['id']}  {r['description']}{note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
