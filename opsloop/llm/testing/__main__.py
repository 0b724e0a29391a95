"""`python -m opsloop.llm.testing`: serve the scripted model on loopback."""

import sys

from opsloop.llm.testing.server import main

sys.exit(main())
