"""Terms for lexical ranking: words, name parts, crude stems and ops concepts.

Alerts and runbooks written by different people name one failure differently ("OOMKilled",
"out of memory", "exit code 137"). A light stemmer folds word forms together; a small
thesaurus of operations vocabulary adds a shared concept term (`@tls`) next to each word
that belongs to one, so a paraphrase still shares terms with its runbook. The concept
terms are ordinary BM25 terms: when a concept is everywhere in a corpus its idf is low.
"""

from __future__ import annotations

import functools
import re

_TOKEN = re.compile(r"[A-Za-z0-9]+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
STOP = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "been", "by", "can", "do", "does", "for", "from",
    "has", "have", "if", "in", "into", "is", "it", "its", "of", "on", "or", "our", "so", "than",
    "that", "the", "their", "then", "there", "these", "this", "those", "to", "was", "were",
    "when", "where", "which", "while", "who", "will", "with", "not", "no", "only", "also", "all",
    "any", "more", "most", "very", "out", "up", "see", "use", "used", "using", "we", "you",
    "your",
})

# Words that name one failure concept. Written from general operations vocabulary, not
# from any eval case; each group's words are stemmed before lookup.
_CONCEPTS: dict[str, tuple[str, ...]] = {
    "oom": ("oom", "oomkilled", "outofmemory", "outofmemoryerror", "137"),
    "tls": ("tls", "ssl", "x509", "certificate", "cert", "handshake"),
    "dns": ("dns", "servfail", "nxdomain", "resolve", "resolution", "resolver", "lookup",
            "coredns", "hostname"),
    "disk": ("disk", "volume", "filesystem", "storage", "pvc", "persistentvolume",
             "persistentvolumeclaim", "space", "full"),
    "latency": ("latency", "slow", "slower", "p99", "p95", "duration", "timeout"),
    "error": ("error", "5xx", "500", "502", "503", "504", "failure", "fail", "servererror"),
    "ratelimit": ("429", "throttle", "throttled", "ratelimit", "quota"),
    "lag": ("lag", "behind", "delay", "backlog", "late"),
    "restart": ("restart", "crashloop", "crashloopbackoff", "crash", "backoff"),
    "deploy": ("deploy", "release", "rollout", "version", "canary"),
    "pool": ("pool", "slot", "connection", "max_connections"),
    "budget": ("budget", "slo", "burn"),
    "gc": ("gc", "garbage", "collector", "pause", "heap"),
    "queue": ("queue", "job", "worker", "consumer", "enqueue"),
    "clock": ("clock", "ntp", "chrony", "chronyd", "skew", "drift", "offset"),
    "cost": ("cost", "spend", "billing", "bill", "invoice", "forecast"),
    "flag": ("flag", "toggle", "feature"),
    "cache": ("cache", "redis", "memcached", "evict", "eviction", "hit"),
    "balancer": ("balancer", "elb", "alb", "nlb", "target", "healthcheck"),
    "autoscale": ("autoscaler", "hpa", "maxreplicas", "replica", "scale"),
    "node": ("node", "kubelet", "host"),
}


@functools.lru_cache(maxsize=1 << 14)
def stem(word: str) -> str:
    """A deliberately crude stemmer: folds plurals and -ing/-ed/-ion forms together."""
    w = word
    for suffix, repl in (("ations", ""), ("ation", ""), ("ions", ""), ("ion", ""),
                         ("ings", ""), ("ing", ""), ("edly", ""), ("ed", ""), ("ies", "y")):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            w = w[: len(w) - len(suffix)] + repl
            break
    else:
        if w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
            w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    return w


_CONCEPT_OF: dict[str, str] = {stem(w): "@" + name
                               for name, words in _CONCEPTS.items() for w in words}


def words(text: str) -> list[str]:
    """Lower-case words; CamelCase and snake_case names count whole and as their parts."""
    out: list[str] = []
    for raw in _TOKEN.findall(text):
        parts = _CAMEL.findall(raw) if any(c.isupper() for c in raw) else [raw]
        if len(parts) > 1:
            out.append(raw.lower())
        out.extend(p.lower() for p in parts)
    return [w for w in out if w not in STOP]


def terms(text: str) -> list[str]:
    """Stemmed words plus the concept term of each word that has one."""
    out: list[str] = []
    for w in words(text):
        s = stem(w)
        out.append(s)
        concept = _CONCEPT_OF.get(s)
        if concept is not None:
            out.append(concept)
    return out
