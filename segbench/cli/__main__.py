"""``python -m segbench.cli``: the same as the ``segbench`` command."""

import sys

from segbench.cli.parser import main

sys.exit(main())
