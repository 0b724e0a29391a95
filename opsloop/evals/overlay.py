"""A case's policy overlay: the run's policies with some fields changed, validated as usual.

Mappings merge key by key; anything else (lists, numbers) replaces. The merged files are
written to a folder of their own and loaded with the real loader, so an overlay can never
produce a policy the loader would refuse.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from opsloop.policy import Policies, load_policies


def deep_merge(base: Any, change: Any) -> Any:
    if isinstance(base, dict) and isinstance(change, dict):
        out = dict(base)
        for key, value in change.items():
            out[key] = deep_merge(base.get(key), value)
        return out
    return change


def overlay_policies(source: Path, overlay: dict[str, Any], cache: Path) -> Policies:
    """Policies from `source` with `overlay` ({file stem: partial content}) merged in."""
    digest = hashlib.sha256(
        json.dumps([str(source.resolve()), overlay], sort_keys=True, default=str).encode()
    ).hexdigest()[:12]
    target = cache / f"policies-{digest}"
    if not target.exists():
        staging = cache / f".staging-{digest}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        for stem, change in overlay.items():
            path = staging / f"{stem}.yaml"
            if not path.exists():
                raise ValueError(f"policy overlay names {stem!r}, but {source} has no {stem}.yaml")
            base = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            path.write_text(yaml.safe_dump(deep_merge(base, change), sort_keys=False),
                            encoding="utf-8")
        staging.rename(target)
    return load_policies(target, allow_unsafe=True)  # simulation only, as in suite.py
