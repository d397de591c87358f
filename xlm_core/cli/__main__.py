"""``python -m xlm_core.cli``: the ``xlm`` command."""

import sys

from xlm_core.cli import main

sys.exit(main())
