"""npppo's performance benchmark: a thin wrapper around :mod:`npppo.bench` (same as ``npppo bench``).

    python scripts/bench.py [--quick] [--json PATH] [--compare sb3] [--threads N] [--dtype D] [--sweep]
"""

from npppo.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
