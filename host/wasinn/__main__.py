"""`python -m wasinn` is the `wasinn` command."""

import sys

from .cli import main

sys.exit(main())
