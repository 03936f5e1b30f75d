"""``python -m npppo``: the ``npppo`` command (:mod:`npppo.cli`)."""

import sys

from npppo.cli import main

sys.exit(main())
