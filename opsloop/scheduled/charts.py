"""What every report chart does last: written beside its final name, then renamed, so a
re-run replaces it whole and a reader never sees half a PNG."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any


def save_png(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure atomically to `path` and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    return path
