"""npppo's own performance figures, the same as ``npppo bench`` (see :mod:`npppo.bench`).

    python scripts/bench.py [--quick] [--json PATH] [--workers N|auto]

The comparison with Stable-Baselines3 is ``scripts/sb3_compare.py``.
"""

from npppo.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
