"""docs/embedding.md: its examples run as written, and the three ways print the same action."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "embedding.md"
FILE_NAME = re.compile(r"^(?:#|/\*)\s*([\w.]+\.(?:py|c)):")  # "# act_numpy.py: ..." or "/* act_once.c: ..."


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w+)\n(.*?)^```", text, re.S | re.M)]


def test_the_examples_run_as_written_and_agree(tmp_path):
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                   "PYTHONPATH": str(DOC.parent.parent)}
    printed = []
    ran = {"python": 0, "c": 0, "sh": 0}
    for language, code in blocks(DOC.read_text()):
        if language in ("python", "c"):
            name = FILE_NAME.match(code)
            assert name, f"a {language} block of {DOC.name} does not start by naming its file"
            (tmp_path / name.group(1)).write_text(code)
            ran[language] += 1
        elif language == "sh":
            for line in code.strip().splitlines():
                result = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=environment, capture_output=True,
                                        text=True)
                assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"
                printed += [float(m) for m in re.findall(r"^torque (\S+)", result.stdout, re.M)]
            ran["sh"] += 1
    assert ran["python"] == 2 and ran["c"] == 1 and ran["sh"] >= 5
    assert len(printed) == 3, printed  # NumPy, C, onnxruntime
    numpy_action = printed[0]
    for other in printed[1:]:
        assert abs(other - numpy_action) <= 1e-5 * max(1.0, abs(numpy_action)) + 1e-6  # + the printing's rounding
