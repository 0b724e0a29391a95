"""Experiments in the Chaos Toolkit format, kept as JSON or YAML files in one folder.

An experiment is Chaos Toolkit's own document (title, description, steady-state-hypothesis,
method, rollbacks, controls), validated by the engine's own validator. opsloop reads one
extension from it, `{"name": "opsloop", ...}`, that says what the run touches so policy can
bound it before it starts: the services, how many instances, how long it holds them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from chaoslib.exceptions import ChaosException
from chaoslib.experiment import ensure_experiment_is_valid

SUFFIXES = (".json", ".yaml", ".yml")
EXTENSION = "opsloop"


class ExperimentError(ValueError):
    """A bad experiment file: where (file, line or field) and what is wrong."""

    def __init__(self, path: Path, where: str, problem: str) -> None:
        super().__init__(f"{path}: {where}: {problem}")
        self.path, self.where, self.problem = path, where, problem


@dataclass(frozen=True)
class BlastRadius:
    """What one run may touch, as the experiment declares it (policy bounds it)."""

    services: tuple[str, ...]
    instances: int  # per service
    duration_minutes: int  # how long the fault is held before the rollbacks


@dataclass(frozen=True)
class Experiment:
    name: str  # the file's stem: `opsloop chaos run NAME`
    path: Path
    title: str
    description: str
    blast_radius: BlastRadius
    weights: dict[str, float]  # steady-state probe name -> weight in the resilience score
    document: dict[str, Any] = field(repr=False)  # the Chaos Toolkit experiment itself

    @property
    def probe_names(self) -> list[str]:
        hypothesis = self.document.get("steady-state-hypothesis") or {}
        return [str(p.get("name", "")) for p in hypothesis.get("probes", [])]

    @property
    def hypothesis(self) -> str:
        return str((self.document.get("steady-state-hypothesis") or {}).get("title", ""))


def read_document(path: Path) -> dict[str, Any]:
    """Parse one file; a syntax error names its line."""
    if path.suffix not in SUFFIXES:
        raise ExperimentError(path, "file", f"not an experiment file (expected "
                                            f"{', '.join(SUFFIXES)})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError(path, "file", f"cannot be read ({exc})") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ExperimentError(path, f"line {exc.lineno}", exc.msg) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        raise ExperimentError(path, where, str(getattr(exc, "problem", None) or exc)) from None
    if not isinstance(data, dict):
        raise ExperimentError(path, "file", "an experiment is a mapping (title, method, ...)")
    return data


def load_experiment(path: Path) -> Experiment:
    """Read and validate one experiment: Chaos Toolkit's rules, then opsloop's extension."""
    document = read_document(path)
    _validate_with_engine(path, document)
    radius, weights = _extension(path, document)
    experiment = Experiment(name=path.stem, path=path, title=str(document["title"]),
                            description=str(document.get("description", "")),
                            blast_radius=radius, weights=weights, document=document)
    unknown = sorted(set(weights) - set(experiment.probe_names))
    if unknown:
        raise ExperimentError(path, f"extensions.{EXTENSION}.weights",
                              f"{', '.join(unknown)} is not a steady-state probe (probes: "
                              f"{', '.join(experiment.probe_names)})")
    if not document.get("rollbacks"):
        raise ExperimentError(path, "rollbacks", "an experiment must say how to undo its "
                                                 "fault (at least one rollback)")
    return experiment


def experiment_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def load_folder(folder: Path) -> tuple[list[Experiment], list[ExperimentError]]:
    """Every experiment in `folder`; a bad file is reported and never hides the others."""
    found: list[Experiment] = []
    errors: list[ExperimentError] = []
    for path in experiment_files(folder):
        try:
            found.append(load_experiment(path))
        except ExperimentError as exc:
            errors.append(exc)
    names = [e.name for e in found]
    for dup in sorted({n for n in names if names.count(n) > 1}):
        errors.append(ExperimentError(folder, dup, "two files share this name (json and yaml?)"))
    return [e for e in found if names.count(e.name) == 1], errors


def find(folder: Path, name: str) -> Experiment:
    """The experiment called `name` in `folder`; an error lists the names there are."""
    experiments, errors = load_folder(folder)
    for experiment in experiments:
        if experiment.name == name:
            return experiment
    bad = next((e for e in errors if e.path.stem == name), None)
    if bad is not None:
        raise bad
    names = ", ".join(e.name for e in experiments) or "none"
    raise ExperimentError(folder, name, f"no such experiment (experiments: {names})")


def _validate_with_engine(path: Path, document: dict[str, Any]) -> None:
    engine_log = logging.getLogger("chaostoolkit")
    level, engine_log.level = engine_log.level, logging.CRITICAL  # we report it ourselves
    try:
        ensure_experiment_is_valid(json.loads(json.dumps(document)))
    except ChaosException as exc:
        raise ExperimentError(path, _field_of(str(exc)), str(exc)) from None
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ExperimentError(path, "file", f"not a valid experiment ({exc})") from None
    finally:
        engine_log.level = level


def _field_of(message: str) -> str:
    """The top-level field the engine's message is about: the one it names first."""
    lowered = message.lower()
    names = ("steady-state-hypothesis", "rollbacks", "method", "controls", "title",
             "description", "configuration", "secrets", "tolerance", "provider", "probe",
             "activit")
    found = [(at, name) for name in names for spelled in (name, name.replace("-", " "))
             if (at := lowered.find(spelled)) >= 0]
    if not found:
        return "experiment"
    name = min(found)[1]
    return {"tolerance": "steady-state-hypothesis", "provider": "method", "probe": "method",
            "activit": "method"}.get(name, name)


def _extension(path: Path, document: dict[str, Any]) -> tuple[BlastRadius, dict[str, float]]:
    where = f"extensions.{EXTENSION}"
    entries = [e for e in document.get("extensions") or [] if isinstance(e, dict)
               and e.get("name") == EXTENSION]
    if len(entries) != 1:
        raise ExperimentError(path, "extensions", f"needs exactly one {{name: {EXTENSION}}} "
                                                  "entry saying services, instances and "
                                                  "duration_minutes")
    ext = entries[0]
    services = ext.get("services")
    if (not isinstance(services, list) or not services
            or not all(isinstance(s, str) and s for s in services)):
        raise ExperimentError(path, f"{where}.services",
                              f"{services!r} is not a list of service names")
    instances, minutes = ext.get("instances"), ext.get("duration_minutes")
    if isinstance(instances, bool) or not isinstance(instances, int) or instances < 0:
        raise ExperimentError(path, f"{where}.instances",
                              f"{instances!r} is not a whole number of instances (0 or more)")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes < 1:
        raise ExperimentError(path, f"{where}.duration_minutes",
                              f"{minutes!r} is not a whole number of minutes (1 or more)")
    raw_weights = ext.get("weights") or {}
    if not isinstance(raw_weights, dict):
        raise ExperimentError(path, f"{where}.weights", "a mapping probe name -> weight")
    weights: dict[str, float] = {}
    for probe, weight in raw_weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
            raise ExperimentError(path, f"{where}.weights.{probe}",
                                  f"{weight!r} is not a positive number")
        weights[str(probe)] = float(weight)
    return BlastRadius(tuple(services), instances, minutes), weights
