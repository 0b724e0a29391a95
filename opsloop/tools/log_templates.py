"""Log templates, not phrases: a service's log lines mined into templates with drain3, each
template sorted into a template class (TLS, DNS, timeout, ...), and per class how many recent
lines there are against the service's own baseline before them.

Runbooks name classes (`classes.tls.surging`, `top == dns`), never literal phrases, so a check
written for one stack's wording holds for another's: "x509: certificate has expired" and
"SSL routines:certificate verify failed" are both `tls`.

Why the class table is a module constant and not a policy file: the class names are part of
the tool contract runbooks are written against (`LOG_CLASSES` in opsloop/models/catalog.py,
checked against this table on import), and the patterns say what a class *means*; changing
either changes what every runbook check reads, which is a code review, not an operator's
setting. The numbers (surge factor, minimum lines) sit beside it for the same reason.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from drain3 import TemplateMiner
from drain3.masking import LogMasker, MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

from opsloop.models import LogLine
from opsloop.models.catalog import LOG_CLASSES, LogClass
from opsloop.tools.tooling import OK, Outcome, ToolContext, _tool

# --- the data ------------------------------------------------------------------------------
# Template class -> a case-insensitive regex over the template text (after masking, so the
# mask names below are part of what a pattern may match). The first class that matches wins:
# a line "token introspection failed: x509: certificate has expired" is `tls`, not `auth`.
CLASS_PATTERNS: tuple[tuple[LogClass, str], ...] = (
    ("tls", r"x509|certificate|\btls\b|\bssl\b|handshake|unknown authority|expired cert"),
    ("dns", r"nxdomain|no such host|name resolution|servfail|server misbehaving|\bdns\b"
            r"|(?:unable to|cannot|could not|failed to) resolve|resolv\w* (?:error|fail|timeout)"
            r"|\blookup \S+ (?:on|failed)\b|(?:dns|name|host) lookup failed"),
    ("oom", r"out of memory|outofmemory|oom ?kill|\boom\b|heap|gc overhead|gc pause|full gc"
            r"|memory pressure|cannot allocate memory|maxmemory"),
    ("disk_full", r"no space left|disk full|enospc|disk usage above|volume (?:is )?full"
                  r"|table \S+ is full|file too large|cannot extend"),
    ("pool_exhausted", r"pool exhausted|too many connections|connection pool|pool timeout"
                       r"|no (?:free|available) connections?|remaining connection slots"),
    ("resource_limit", r"pthread_create|cannot create thread|too many open files"
                       r"|file descriptors?|no free worker threads?|thread limit|\bulimit\b"),
    ("cpu", r"\bcpu\b|high load|load average"),
    ("rate_limited", r"HTTP_429|\b429\b|throttl|rate[- ]?limit(?:ed|ing|s? exceeded| reached)"
                     r"|quota|too many requests|resource_exhausted|over limit"),
    ("auth", r"HTTP_40[13]|\b40[13]\b|unauthori[sz]ed|unauthenticated|forbidden"
             r"|permission denied|access denied|authentication failed"
             r"|(?:invalid|expired|missing|bad|no valid) (?:\w+ )?token"
             r"|token \w* ?(?:expired|invalid|rejected|failed)"),
    ("retry", r"retrying|retried|retry|backoff|back(?:ing)? off"),
    ("connection_refused", r"refused|reset by peer|econnrefused|econnreset|connection reset"
                           r"|no route to host|unreachable|broken pipe"),
    ("timeout", r"timed? ?out|timeout|deadline (?:exceeded|passed)|did not respond in time"),
    ("unavailable", r"HTTP_5XX|\b50[0-4]\b|service ?unavailable|\bunavailable\b|bad gateway"
                    r"|internal ?server ?error|request shed"),
    ("cache_miss", r"cache miss|cold cache|evict|cache (?:expired|invalidat\w*|flush)"),
    ("exception", r"\bpanic\b|exception|traceback|segfault|segmentation fault|stack trace"
                  r"|assertion failed|(?<=[a-z])error\b"),
    ("config", r"\bconfig(?:uration)?\b|invalid setting|misconfigur|\breload(?:ed|ing)?\b"),
)
SURGE_FACTOR = 3.0  # surging: recent lines per minute above this many times the baseline's
SURGE_MIN_LINES = 3  # ... and at least this many recent lines (two lines are not a surge)
MAX_LINES = 20_000  # lines mined per call at most: the newest are kept
TOP_TEMPLATES = 10

# drain3, configured in full here so no drain3.ini on the machine can change the answer.
# Masks run before mining, in order; status codes become one token per meaning so that a 502
# and a 503 line share a template and the class table still sees what they were.
_MASKS: tuple[tuple[str, str], ...] = (
    (r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?", "TIME"),
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "ID"),
    (r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\d.])", "IP"),
    (r"(?<![\w])(?:0x)?(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}(?![\w])", "HEX"),
    (r"(?<![\w./:-])50[0-4](?![\w./%-]|:\d)", "HTTP_5XX"),
    (r"(?<![\w./:-])429(?![\w./%-]|:\d)", "HTTP_429"),
    (r"(?<![\w./:-])401(?![\w./%-]|:\d)", "HTTP_401"),
    (r"(?<![\w./:-])403(?![\w./%-]|:\d)", "HTTP_403"),
)
_SIMILARITY = 0.5  # drain3's default 0.4 merges unlike error lines of the same length
_DEPTH = 4
_MAX_CHILDREN = 100

_COMPILED = tuple((cls, re.compile(rx, re.IGNORECASE)) for cls, rx in CLASS_PATTERNS)
if [c for c, _ in CLASS_PATTERNS] + ["other"] != list(LOG_CLASSES):
    raise ImportError("CLASS_PATTERNS must list the catalog's LOG_CLASSES in order, `other` last")


def _config() -> TemplateMinerConfig:
    config = TemplateMinerConfig()
    config.drain_sim_th = _SIMILARITY
    config.drain_depth = _DEPTH
    config.drain_max_children = _MAX_CHILDREN
    config.drain_max_clusters = None  # bounded by MAX_LINES instead: no eviction, no drift
    config.drain_extra_delimiters = []
    config.parametrize_numeric_tokens = True
    config.masking_instructions = [MaskingInstruction(rx, name) for rx, name in _MASKS]
    config.mask_prefix, config.mask_suffix = "<", ">"
    config.profiling_enabled = False
    return config


@functools.lru_cache(maxsize=4096)
def classify(template: str) -> LogClass:
    """The template class of a template (or of any text): the first pattern that matches."""
    return next((cls for cls, rx in _COMPILED if rx.search(template)), "other")


# Digits that are values, not names (`3000ms`, `sn-42`, but not `x509` or `HTTP_429`): one
# shape of line is classified once however its numbers vary.
_VALUES = re.compile(r"(?<![A-Za-z_])\d+")


def _masker() -> LogMasker:
    config = _config()
    return LogMasker(config.masking_instructions, config.mask_prefix, config.mask_suffix)


_MASKER = _masker()


@functools.lru_cache(maxsize=8192)
def _masked(message: str) -> tuple[str, LogClass]:
    """A line with its values masked, and its class: the same line recurs in every window
    that covers it, so each is masked and classified once."""
    masked = _MASKER.mask(message)
    return masked, classify(_VALUES.sub("0", masked))


@functools.lru_cache(maxsize=32)
def mine(messages: tuple[str, ...]) -> tuple[tuple[str, LogClass], ...]:
    """Each message's template and class, mined from these messages in this order.

    A line is masked, classified by the table, and mined among the lines of its own class:
    drain3 merges lines that share most tokens and replaces the rest with `<*>`, which could
    drop exactly the words a class is recognised by ("x509" vs "refused" in otherwise equal
    lines). Mined per class, a template never mixes classes, and its class is what the table
    says of every line in it. Deterministic: the same messages give the same answer; each
    template is its cluster's final form. A line equal to an earlier one once masked (a
    window repeats its routine lines, values aside) is not mined again: it takes the earlier
    one's cluster, so equal lines always share a template.
    """
    miner = TemplateMiner(config=_config())
    clusters: dict[str, int] = {}  # "class masked-line" -> its cluster
    ids: list[int] = []
    classes: list[LogClass] = []
    for message in messages:
        masked, cls = _masked(message)
        line = f"{cls} {masked}"
        cluster_id = clusters.get(line)
        if cluster_id is None:
            cluster, _ = miner.drain.add_log_message(line)
            cluster_id = clusters[line] = cluster.cluster_id
        ids.append(cluster_id)
        classes.append(cls)
    final = {c.cluster_id: c.get_template().split(" ", 1)[-1] for c in miner.drain.clusters}
    return tuple((final[i], cls) for i, cls in zip(ids, classes, strict=True))


@dataclass(frozen=True)
class MinedLine:
    line: LogLine
    template: str
    cls: LogClass
    recent: bool


def mine_service(ctx: ToolContext, service: str, minutes: int,
                 baseline_minutes: int) -> list[MinedLine]:
    """The service's lines of the last `minutes` (recent) and the `baseline_minutes` before,
    oldest first, each with its template and class. Windows come from the backend's own time,
    so a tool context without a clock still splits them right."""
    every = ctx.telemetry.logs(service, minutes + baseline_minutes, None, MAX_LINES)
    n_recent = len(ctx.telemetry.logs(service, minutes, None, MAX_LINES))
    ordered = sorted(every, key=lambda ln: (ln.at, ln.message))
    mined = mine(tuple(ln.message for ln in ordered))
    first_recent = len(ordered) - min(n_recent, len(ordered))
    return [MinedLine(ln, template, cls, i >= first_recent)
            for i, (ln, (template, cls)) in enumerate(zip(ordered, mined, strict=True))]


def _forms(name: str) -> list[str]:
    """How a service's name shows up in a log line: as itself, with underscores, run together."""
    forms = {name.lower(), name.lower().replace("-", "_")}
    if "-" in name and len(name.replace("-", "")) >= 6:
        forms.add(name.lower().replace("-", ""))
    return sorted(forms, key=lambda f: (-len(f), f))


def name_pattern(names: Iterable[str]) -> tuple[re.Pattern[str], dict[str, str]]:
    """A regex finding service names as hosts or words (`authz.identity.internal`, `redis-0`,
    `https://payments`) but not inside other names (`payments-provider` is not `payments`) or
    URL paths (`/api/v1/search`); and the map from a matched form to its service."""
    by_form: dict[str, str] = {}
    for name in sorted(names):
        for form in _forms(name):
            by_form.setdefault(form, name)
    if not by_form:
        return re.compile(r"(?!x)x"), by_form
    alternatives = "|".join(re.escape(f) for f in sorted(by_form, key=lambda f: (-len(f), f)))
    rx = re.compile(rf"(?:(?<=://)|(?<![a-z0-9_/-]))({alternatives})(?:-\d+)?"
                    rf"(?![a-z0-9_/]|-(?!\d))", re.IGNORECASE)
    return rx, by_form


def named(rx: re.Pattern[str], by_form: dict[str, str], message: str) -> set[str]:
    return {by_form[m.group(1).lower()] for m in rx.finditer(message)}


def class_table(mined: Sequence[MinedLine], minutes: int,
                baseline_minutes: int) -> dict[str, dict[str, Any]]:
    """Every class (absent ones with zeros), recent vs baseline: counts, rate ratio, surging,
    new. The rate ratio divides by at least one line per baseline window, so a class never
    seen before has a finite ratio."""
    recent = Counter(m.cls for m in mined if m.recent)
    base = Counter(m.cls for m in mined if not m.recent)
    table: dict[str, dict[str, Any]] = {}
    for cls in LOG_CLASSES:
        r, b = recent[cls], base[cls]
        rate, base_rate = r / minutes, b / baseline_minutes
        table[cls] = {"recent": r, "baseline": b,
                      "rate_ratio": round(rate / max(base_rate, 1 / baseline_minutes), 4),
                      "surging": r >= SURGE_MIN_LINES and rate > SURGE_FACTOR * base_rate,
                      "new": r > 0 and b == 0}
    return table


def top_class(counts: Counter[str]) -> str | None:
    """The non-`other` class with the most lines; ties go to the earlier (more specific) one."""
    ranked = [c for c in LOG_CLASSES if c != "other" and counts[c] > 0]
    return max(ranked, key=lambda c: (counts[c], -LOG_CLASSES.index(c)), default=None)


@_tool
def log_classes(ctx: ToolContext, service: str, minutes: int = 15,
                baseline_minutes: int = 120) -> Outcome:
    """Log lines mined into templates and classes (tls, dns, timeout, ...): recent vs baseline.

    data: classes {class: {recent, baseline, rate_ratio, surging, new}} (every class, zeros
    when absent), top, templates [{template, class, recent, baseline}] (up to 10),
    recent_lines, baseline_lines, names (catalog services named in recent non-`other` lines,
    most named first).
    """
    mined = mine_service(ctx, service, minutes, baseline_minutes)
    table = class_table(mined, minutes, baseline_minutes)
    recent = [m for m in mined if m.recent]
    top = top_class(Counter(m.cls for m in recent))
    per_template: dict[tuple[str, str], list[int]] = {}
    for m in mined:
        per_template.setdefault((m.template, m.cls), [0, 0])[0 if m.recent else 1] += 1
    ranked = sorted(per_template.items(), key=lambda kv: (-kv[1][0], kv[1][1], kv[0]))
    templates = [{"template": t, "class": cls, "recent": r, "baseline": b}
                 for (t, cls), (r, b) in ranked[:TOP_TEMPLATES]]
    rx, by_form = name_pattern(s.name for s in ctx.telemetry.services())
    mentioned: Counter[str] = Counter()
    for m in recent:
        if m.cls != "other":
            mentioned.update(named(rx, by_form, m.line.message))
    names = [n for n, _ in sorted(mentioned.items(), key=lambda kv: (-kv[1], kv[0]))]
    data = {"classes": table, "top": top, "templates": templates, "recent_lines": len(recent),
            "baseline_lines": len(mined) - len(recent), "names": names}
    surging = [c for c in LOG_CLASSES if table[c]["surging"] and c != "other"]
    return OK, data, (f"{service}: {len(recent)} log lines in {minutes}m, "
                      f"{data['baseline_lines']} in the {baseline_minutes}m before; "
                      f"top class {top or 'none'}"
                      + (f"; surging: {', '.join(surging)}" if surging else ""))
