import sys

from xlm_core.cli import main

sys.exit(main())
