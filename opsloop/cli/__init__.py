"""The `opsloop` command."""

from opsloop.cli.main import main

__all__ = ["main"]
