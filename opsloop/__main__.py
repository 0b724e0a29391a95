"""`python -m opsloop` is the `opsloop` command."""

import sys

from opsloop.cli import main

sys.exit(main())
