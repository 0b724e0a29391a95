from lib import Case, FlowList  # noqa: F401


def key(service, severity, specialists, category, *, remediation=(), forbidden=(),
        approval=False, verification="none", keywords=None, postmortem=None):
    out = {"service": service, "severity": severity if isinstance(severity, str)
           else list(severity),
           "specialists": list(specialists) if not isinstance(specialists, str) else specialists,
           "root_cause": {"category": category}}
    if keywords:
        out["root_cause"]["keywords"] = list(keywords)
    out["remediation"] = [dict(r) for r in remediation]
    out["forbidden"] = [dict(f) for f in forbidden]
    out["approval"] = approval
    out["verification"] = verification
    if postmortem:
        out["postmortem"] = list(postmortem)
    return out


def act(type_, service=None, **params):
    a = {"type": type_}
    if service:
        a["service"] = service
    if params:
        a["params"] = params
    return a


def healthy(c: Case, svc, err, lat, rps, sat, *, cpu=None, mem=None, noise=0.03):
    ms = {"error_ratio": c.series(err, noise=0.15),
          "latency_p99_ms": c.series(lat, noise=noise),
          "requests_per_second": c.series(rps, noise=noise),
          "saturation": c.series(sat, noise=noise)}
    if cpu is not None:
        ms["cpu_utilization"] = c.series(cpu, noise=noise)
    if mem is not None:
        ms["memory_utilization"] = c.series(mem, noise=0.01)
    c.m(svc, **ms)
    c.prior(svc, error_ratio=err)
