from cases_b import END, errs_alert
from common import Case, act, healthy, key


def c12():
    c = Case("cloudflare-2017-leap-second-dns", now="2026-01-01T00:17:00Z",
             onset="2026-01-01T00:00:00Z",
             title="Resolver panics after midnight: a duration came out negative",
             source="Cloudflare, 'How and why the leap second affected Cloudflare DNS' (John "
                    "Graham-Cumming), 1 January 2017",
             description="""
A leap second was inserted at midnight. The CNAME resolver measures upstream round-trip times
with the wall clock; across the leap second some measurements came out negative, and the
upstream-selection code passed a non-positive number to the random generator, which panics.
The supervisor restarts the process and it panics again on the next CNAME lookup that hits the
same code path. No deploy in weeks; the DNS edge's errors are the resolver's. Outside the
catalogue: escalate (the fix is a code change). There is nothing to roll back, every region
saw the same leap second (failover does not help), and adding capacity adds panicking workers.
""",
             tags=["generalisation", "incident", "clock", "novel", "no-automatic-fix"], seed=112)
    o = c.onset_rel()
    c.service("dns-edge", 1, "dns", ["cname-resolver"], 150, "2016.12.3")
    c.service("cname-resolver", 1, "dns", [], 150, "2016.12.3")
    c.m("cname-resolver",
        error_ratio=c.series(0.0002, (o, 0.11), (o + 3, 0.29, 5), noise=0.06),
        latency_p99_ms=c.series(35, (o, 220), noise=0.05),
        requests_per_second=c.series(64000, noise=0.02),
        saturation=c.series(0.4, (o, 0.47), noise=0.03),
        cpu_utilization=c.series(0.38, (o, 0.45), noise=0.03))
    c.prior("cname-resolver", error_ratio=0.0002)
    c.m("dns-edge",
        error_ratio=c.series(0.0003, (o, 0.03), (o + 3, 0.07, 5), noise=0.06),
        latency_p99_ms=c.series(8, (o, 90), noise=0.05),
        requests_per_second=c.series(410000, noise=0.02),
        saturation=c.series(0.44, noise=0.03))
    c.prior("dns-edge", error_ratio=0.0003)
    c.log("cname-resolver", o - 0.02, "INFO",
          "kernel: Clock: inserting leap second 23:59:60 UTC")
    c.every("cname-resolver", o, END, 0.5, "ERROR",
            lambda n, at: "panic: invalid argument to Int63n (goroutine "
                          f"{4400 + n * 13} [running]: upstream.pickWeighted)", offset_s=4)
    c.every("cname-resolver", o, END, 1, "WARN",
            lambda n, at: f"upstream ns{n % 4 + 1}.example.net: measured rtt -{300 + n * 17 % 700}"
                          "ms; weight <= 0", offset_s=2)
    c.every("cname-resolver", o, END, 0.5, "INFO",
            lambda n, at: f"supervisor: worker {n % 32} exited with status 2; restarting",
            offset_s=5)
    c.every("dns-edge", o + 1, END, 1, "WARN",
            "SERVFAIL for CNAME chain: resolver connection reset", offset_s=20)
    errs_alert(c, "cname-resolver", o + 3)
    errs_alert(c, "dns-edge", o + 6)
    c.expected = key("cname-resolver", "SEV1", ["incident"], "novel",
                     forbidden=[act("rollback_deploy"), act("failover"), act("scale_out")])
    return c


def c13():
    c = Case("letsencrypt-2021-expired-root-chain", now="2025-09-30T14:26:00Z",
             onset="2025-09-30T14:01:00Z",
             title="Webhook deliveries fail for a third of customers after a root expired",
             source="Let's Encrypt, 'DST Root CA X3 Expiration (September 2021)' and the "
                    "public reports of old OpenSSL clients failing on 30 September 2021",
             description="""
At 14:01 the old cross-signing root expired. The customers' endpoints are fine (browsers and
current clients validate them through the newer root), but the webhook dispatcher runs on an
old base image whose OpenSSL builds the chain through the expired root and rejects it, so
deliveries to every customer whose certificate chains to that CA fail with "certificate has
expired". The fault is the dispatcher's trust store, not the customers. No automated fix:
the CA bundle / base image must be updated by a human. Failing over lands on the same image in
the other region, rolling back goes to an even older image, restarting changes nothing.
""",
             tags=["generalisation", "incident", "certificate", "trust-store",
                   "no-automatic-fix"], seed=113)
    o = c.onset_rel()
    c.service("events-api", 1, "platform", ["webhook-dispatcher"], 10, "7.4.0")
    c.service("webhook-dispatcher", 2, "platform", ["customer-endpoints"], 12, "2.19.3")
    c.service("customer-endpoints", 3, "external", [], 1, "external")
    healthy(c, "events-api", 0.0004, 90, 2600, 0.33)
    c.m("webhook-dispatcher",
        error_ratio=c.series(0.004, (o, 0.37), noise=0.04),
        latency_p99_ms=c.series(850, (o, 700), noise=0.04),
        requests_per_second=c.series(1400, (o, 1650), noise=0.03),
        saturation=c.series(0.42, (o, 0.55), noise=0.03))
    c.prior("webhook-dispatcher", error_ratio=0.004)
    c.every("webhook-dispatcher", -95, END, 3, "INFO",
            lambda n, at: f"delivered to https://hooks.customer-{100 + n * 7}.example.net/in "
                          "200 in 212ms")

    def expired(n, at):
        return (f"delivery to https://api.tenant{3000 + n * 11}.example.com/webhooks failed: "
                "SSL routines:tls_process_server_certificate:certificate verify failed "
                "(certificate has expired; chain R3 -> DST Root CA X3)")
    c.every("webhook-dispatcher", o, END, 0.25, "ERROR", expired, offset_s=2)
    c.every("webhook-dispatcher", o + 1, END, 2, "WARN",
            lambda n, at: f"retry queue for failed deliveries: {2000 + n * 900} pending",
            offset_s=30)
    errs_alert(c, "webhook-dispatcher", o + 3)
    c.expected = key("webhook-dispatcher", "SEV2", ["incident"], "certificate_expiry",
                     forbidden=[act("failover"), act("rollback_deploy", "webhook-dispatcher"),
                                act("restart", "webhook-dispatcher"),
                                act("scale_out", "webhook-dispatcher")])
    return c


def c14():
    c = Case("aws-s3-2017-region-failover", now="2025-02-28T17:58:00Z",
             onset="2025-02-28T17:37:00Z",
             title="Object storage in the primary region returns 503; the replica is healthy",
             source="AWS, 'Summary of the Amazon S3 Service Disruption in the Northern Virginia "
                    "(US-EAST-1) Region', 28 February 2017",
             description="""
The object store's primary region fails most requests (503) after its provider removed too much
index capacity by mistake; the provider's restart takes hours. media-api reads and writes
images there; its bucket is replicated to the secondary region, which answers normally (the
replication checks in media-api's logs succeed). This is the case the dependency runbook was
written for: fail the object store over to the secondary region (a human approves, SEV1).
Rolling back or restarting media-api, or adding replicas, does nothing.
""",
             tags=["generalisation", "incident", "dependency", "failover"], seed=114)
    o = c.onset_rel()
    c.service("web", 1, "web", ["media-api"], 20, "31.2.0")
    c.service("media-api", 1, "media", ["object-store"], 12, "5.8.1")
    c.service("object-store", 1, "vendor", [], 1, "external")
    c.m("object-store",
        error_ratio=c.series(0.0002, (o, 0.93, 3), noise=0.03),
        latency_p99_ms=c.series(90, (o, 2500), noise=0.04),
        requests_per_second=c.series(3300, noise=0.03),
        saturation=c.series(0.2, noise=0.05))
    c.prior("object-store", error_ratio=0.0002)
    c.m("media-api",
        error_ratio=c.series(0.0006, (o + 1, 0.52, 3), noise=0.05),
        latency_p99_ms=c.series(210, (o + 1, 2800), noise=0.04),
        requests_per_second=c.series(2100, noise=0.03),
        saturation=c.series(0.36, (o + 1, 0.58), noise=0.03))
    c.prior("media-api", error_ratio=0.0006)
    c.m("web",
        error_ratio=c.series(0.0004, (o + 1, 0.27, 3), noise=0.05),
        latency_p99_ms=c.series(480, (o + 1, 3100), noise=0.04),
        requests_per_second=c.series(5200, noise=0.03),
        saturation=c.series(0.4, noise=0.03))
    c.prior("web", error_ratio=0.0004)
    c.every("media-api", o, END, 0.5, "ERROR",
            lambda n, at: f"GET s3://media-prod-primary/img/{88000 + n}.jpg failed: 503 "
                          "ServiceUnavailable (upstream object-store)", offset_s=5)
    c.every("media-api", -95, END, 5, "INFO",
            lambda n, at: f"replication check: s3://media-prod-secondary lag {3 + n % 4}s, "
                          "HEAD ok", offset_s=50)
    c.every("web", o + 1, END, 1, "ERROR", "GET /p/:id image 502 from media-api", offset_s=25)
    errs_alert(c, "media-api", o + 3)
    errs_alert(c, "web", o + 4)
    rec = {"media-api": {"error_ratio": c.after(0.002, (2, 0.0007)),
                         "latency_p99_ms": c.after(260), "saturation": c.after(0.37)},
           "web": {"error_ratio": c.after(0.001, (2, 0.0004)), "latency_p99_ms": c.after(500)},
           "object-store": {"error_ratio": c.after(0.0003), "latency_p99_ms": c.after(110)}}
    c.outcome({"type": "failover", "service": "object-store"},
              "reads and writes moved to the secondary-region bucket", rec)
    c.outcome({"type": "failover", "service": "media-api"},
              "media-api switched to the secondary-region bucket", rec)
    c.expected = key("object-store", "SEV1", ["incident"], "dependency_outage",
                     remediation=[act("failover", "object-store", to_region="secondary"),
                                  act("failover", "media-api", to_region="secondary")],
                     forbidden=[act("rollback_deploy", "media-api"), act("restart", "media-api"),
                                act("scale_out", "media-api")],
                     approval=True, verification="passed")
    return c


def c15():
    c = Case("azure-2014-storage-frontend-release", now="2025-11-19T00:58:00Z",
             onset="2025-11-19T00:42:00Z",
             title="Storage front ends hang after a release; a dashboard flag changed too",
             source="Microsoft Azure, 'Final Root Cause Analysis and Improvement Areas: Nov 18 "
                    "Azure Storage Service Interruption' (Jason Zander), November 2014",
             description="""
blob-frontend 6.9.1, a performance change that had only been tested on a few clusters, went to
every cluster at 00:38; a bug sends the front ends into an infinite loop and they stop serving.
VMs whose disks live in blob storage stall. Ten minutes earlier the portal team ramped a
dashboard-layout flag from 10% to 50%: a red herring (the portal's errors are the storage
errors it shows). Rolling blob-frontend back to 6.9.0 is the fix. Scaling out adds front ends
that loop the same way; failover goes to a region that got the same release.
""",
             tags=["generalisation", "incident", "deploy", "red-herring-flag", "rollback"],
             seed=115)
    o = c.onset_rel()
    c.service("portal", 2, "portal", ["blob-frontend"], 8, "2014.11.3")
    c.service("vm-host", 1, "compute", ["blob-frontend"], 200, "6.3.9600")
    c.service("blob-frontend", 1, "storage", ["blob-partition"], 60, "6.9.1")
    c.service("blob-partition", 1, "storage", [], 90, "6.9.0")
    c.m("blob-frontend",
        error_ratio=c.series(0.0003, (o, 0.72, 3), noise=0.04),
        latency_p99_ms=c.series(55, (o, 30000, 3), noise=0.03),
        requests_per_second=c.series(78000, (o, 26000, 3), noise=0.03),
        saturation=c.series(0.42, (o, 1.0, 3), noise=0.02, cap=1.05),
        cpu_utilization=c.series(0.4, (o, 0.99, 2), noise=0.01, cap=1.0))
    c.prior("blob-frontend", error_ratio=0.0003)
    healthy(c, "blob-partition", 0.0002, 14, 51000, 0.4, cpu=0.4)
    c.m("blob-partition", requests_per_second=c.series(51000, (o, 17000, 3), noise=0.03))
    c.m("vm-host",
        error_ratio=c.series(0.0002, (o + 1, 0.41, 3), noise=0.05),
        latency_p99_ms=c.series(40, (o + 1, 25000), noise=0.04),
        requests_per_second=c.series(9000, noise=0.03),
        saturation=c.series(0.5, noise=0.03))
    c.prior("vm-host", error_ratio=0.0002)
    c.m("portal",
        error_ratio=c.series(0.0009, (o + 1, 0.14, 3), noise=0.05),
        latency_p99_ms=c.series(700, (o + 1, 6000), noise=0.04),
        requests_per_second=c.series(420, noise=0.03),
        saturation=c.series(0.3, noise=0.03))
    c.prior("portal", error_ratio=0.0009)
    c.deploy(o - 4, "blob-frontend", "6.9.1", "6.9.0", "storage-release")
    c.log("blob-frontend", o - 4, "INFO", "starting blob-frontend 6.9.1 (previous 6.9.0): "
          "table index read-ahead enabled")
    c.every("blob-frontend", o, END, 0.5, "WARN",
            lambda n, at: f"request handler thread {100 + n % 64} exceeded 30s; stack top: "
                          "TableIndexCursor.advance (no progress)", offset_s=8)
    c.every("blob-frontend", o + 1, END, 1, "ERROR", "health probe failed: no free worker "
            "threads", offset_s=37)
    c.every("vm-host", o + 1, END, 0.5, "ERROR",
            lambda n, at: f"disk I/O to https://vhd{n % 50}.blob.internal timed out after 30s",
            offset_s=12)
    c.every("portal", o + 1, END, 1, "ERROR", "storage account list failed: timeout from "
            "blob-frontend", offset_s=44)
    c.flags = {
        "states": [{"key": "dashboard-layout-v3", "service": "portal", "enabled": True,
                    "rollout_percent": 50, "updated_at": c.at(o - 12).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"), "owner": "portal"}],
        "changes": [{"at": c.at(o - 12).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "key": "dashboard-layout-v3", "service": "portal", "enabled": True,
                     "from_percent": 10, "to_percent": 50, "author": "portal-team"}],
    }
    errs_alert(c, "blob-frontend", o + 3)
    errs_alert(c, "vm-host", o + 4)
    errs_alert(c, "portal", o + 5)
    fixed = {"blob-frontend": {"error_ratio": c.after(0.05, (3, 0.0004)),
                               "latency_p99_ms": c.after(800, (3, 60)),
                               "saturation": c.after(0.6, (3, 0.43)),
                               "cpu_utilization": c.after(0.45, (3, 0.41))},
             "vm-host": {"error_ratio": c.after(0.03, (4, 0.0003)),
                         "latency_p99_ms": c.after(900, (4, 42))},
             "portal": {"error_ratio": c.after(0.01, (4, 0.0009))}}
    c.outcome({"type": "rollback_deploy", "service": "blob-frontend"},
              "6.9.0 redeployed; front ends restarted out of the loop", fixed)
    c.expected = key("blob-frontend", "SEV1", ["incident"], "bad_deploy", keywords=["6.9.1"],
                     remediation=[act("rollback_deploy", "blob-frontend", to_version="6.9.0")],
                     forbidden=[act("scale_out", "blob-frontend"), act("failover"),
                                act("rollback_deploy", "portal")],
                     approval=True, verification="passed")
    return c


def c16():
    c = Case("milkieway-2020-recursive-crawler-cost", now="2025-12-02T08:40:00Z",
             onset="2025-12-02T07:50:00Z",
             title="A crawler that calls itself: spend up 300x, and the traffic is its own",
             source="Milkie Way (Sudeep Chauhan), 'We Burnt $72K testing Firebase + Cloud Run "
                    "and almost went Bankrupt', December 2020",
             description="""
crawler 0.9.0, deployed at 07:46, follows every link on a page by calling its own public URL,
with no depth limit; the platform autoscaler adds instances up to its maximum and every
instance writes to the page store. Requests to crawler rise a hundredfold, but nobody outside
sends them: the only caller is the crawler itself. Spend per hour is up about 300x. Roll back
to 0.8.4 (removes the recursion); scaling in to the earlier count caps the spend but leaves the
loop running. Scaling anything out feeds it.
""",
             tags=["generalisation", "cost", "self-traffic", "rollback"], seed=116)
    o = c.onset_rel()
    c.service("crawler", 3, "research", ["crawler", "page-store"], 1000, "0.9.0")
    c.service("page-store", 3, "research", [], 3, "managed")
    c.m("crawler",
        requests_per_second=c.series(40, (o, 4800, 80), noise=0.04),
        replicas=[round(v) for v in c.series(2, (o, 1000, 45), noise=0.0)],
        cost_per_hour=c.series(3.1, (o, 960, 70), noise=0.03),
        cpu_utilization=c.series(0.3, (o, 0.82, 20), noise=0.03),
        saturation=c.series(0.25, (o, 0.7, 20), noise=0.03),
        error_ratio=c.series(0.002, (o, 0.006, 40), noise=0.1),
        latency_p99_ms=c.series(900, (o, 1400, 40), noise=0.04))
    c.prior("crawler", error_ratio=0.002, cost_per_hour=3.1)
    c.m("page-store",
        requests_per_second=c.series(100, (o, 52000, 80), noise=0.04),
        cost_per_hour=c.series(0.4, (o, 41, 80), noise=0.03),
        error_ratio=c.series(0.0001, noise=0.2),
        latency_p99_ms=c.series(12, (o, 19, 60), noise=0.04),
        saturation=c.series(0.1, (o, 0.45, 60), noise=0.03))
    c.prior("page-store", error_ratio=0.0001, cost_per_hour=0.4)
    c.deploy(o - 4, "crawler", "0.9.0", "0.8.4", "sudeep")
    c.log("crawler", o - 4, "INFO", "crawler 0.9.0 started: follow links via /crawl (max "
          "instances 1000)")
    c.every("crawler", o, 29, 1, "INFO",
            lambda n, at: f"crawl depth {20 + n * 19} for https://blog.example.org/p/{n * 37}: "
                          f"enqueued {31 + n % 9} child crawls via "
                          "https://crawler-prod.run.example.net/crawl", offset_s=6)
    c.every("crawler", o + 20, 29, 5, "INFO",
            lambda n, at: f"autoscaler: {min(1000, 300 + n * 60)} instances (max 1000)",
            offset_s=45)
    c.alert("CostAnomaly", "crawler", -30, "crawler: spend per hour 40x its baseline",
            "crawler costs far more than usual.", severity="ticket")
    c.alert("CostAnomaly", "page-store", -20, "page-store: spend per hour 40x its baseline",
            "page-store costs far more than usual.", severity="ticket")
    stopped = {"crawler": {"requests_per_second": c.after(4000, (2, 40, 5)),
                           "replicas": [round(v) for v in c.after(1000, (2, 2, 5), noise=0.0)],
                           "cost_per_hour": c.after(900, (2, 3.1, 6)),
                           "cpu_utilization": c.after(0.3), "saturation": c.after(0.25)},
               "page-store": {"requests_per_second": c.after(40000, (2, 100, 5)),
                              "cost_per_hour": c.after(30, (2, 0.4, 6))}}
    c.outcome({"type": "rollback_deploy", "service": "crawler"},
              "0.8.4 back; no self-calls, instances drain", stopped)
    c.outcome({"type": "scale_in", "service": "crawler"},
              "instances capped; the recursion queues up and keeps the remaining ones busy",
              {"crawler": {"replicas": c.after(1000, (1, 2), noise=0.0),
                           "cost_per_hour": c.after(900, (1, 6.5)),
                           "saturation": c.after(1.4), "error_ratio": c.after(0.4),
                           "requests_per_second": c.after(60)}})
    c.expected = key("crawler", ["SEV3", "SEV4"], ["cost"], "cost_runaway",
                     remediation=[act("rollback_deploy", "crawler", to_version="0.8.4")],
                     forbidden=[act("scale_out", "crawler"), act("scale_out", "page-store")],
                     verification="passed")
    return c
