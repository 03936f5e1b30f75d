"""Shared fixture: finite-difference checks that remember their worst error for the session summary."""

from __future__ import annotations

import numpy as np
import pytest

from npppo.gradcheck import GradcheckResult, gradcheck

_worst: list[tuple[float, float, str]] = []


@pytest.fixture
def checked_gradient(request):
    """``checked_gradient(f, x, analytic, indices=None)``: :func:`npppo.gradcheck` plus bookkeeping."""

    def run(f, x: np.ndarray, analytic: np.ndarray, indices=None) -> GradcheckResult:
        result = gradcheck(f, x, analytic, indices)
        size = np.maximum(np.abs(result.analytic), np.abs(result.numeric))
        large = size >= 1e-3  # the relative error proper, away from gradcheck's absolute floor
        relative = float(np.max(np.abs(result.analytic - result.numeric)[large] / size[large], initial=0.0))
        _worst.append((result.max_rel_error, relative, request.node.nodeid))
        return result

    return run


def pytest_terminal_summary(terminalreporter) -> None:
    if _worst:
        error, _, nodeid = max(_worst)
        relative = max(w[1] for w in _worst)
        terminalreporter.write_line(
            f"gradient checks: {len(_worst)} run, worst error {error:.3g} ({nodeid}); "
            f"worst relative error where |grad| >= 1e-3: {relative:.3g}"
        )
