"""Reading the work dir's folders of documents without leaving them."""

from __future__ import annotations

from pathlib import Path


def documents(directory: Path, pattern: str = "*.md") -> list[Path]:
    """Regular files directly in `directory` matching `pattern`, by name. A symlink is never
    followed (it could point anywhere on the machine), nor is anything in a subfolder."""
    if not directory.is_dir() or directory.is_symlink():
        return []
    return sorted(p for p in directory.glob(pattern) if p.is_file() and not p.is_symlink())
