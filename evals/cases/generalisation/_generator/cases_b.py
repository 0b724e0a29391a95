from common import Case, act, healthy, key

END = 29


def errs_alert(c, svc, when):
    c.alert("HighErrorRate", svc, when, f"{svc}: error ratio above 5% over 5m",
            f"More than 5% of requests to {svc} fail.")


def c06():
    c = Case("gce-2016-network-config-push", now="2025-04-11T19:27:00Z",
             onset="2025-04-11T19:09:00Z",
             title="A network configuration push withdraws every public prefix",
             source="Google Cloud, 'Google Compute Engine Incident #16007' (11 April 2016): "
                    "removing an unused IP block from the network configuration triggered a "
                    "propagation bug that withdrew all of GCE's IP blocks",
             description="""
At 18:58 network automation pushed configuration netcfg-2025.04.11-r2 to the edge routers: it
removes one unused prefix. A consistency check flagged the new configuration as incomplete, but
propagation went on and the routers withdrew every prefix they announce; from 19:09 external
traffic to the VM front end and the load-balancer API fails. This is a change, not a
software release (kind: config), and reverting it (rollback to netcfg-2025.04.11-r1) is the
fix that worked. The configuration went to every region, so a failover lands on the same
withdrawn prefixes; restarting the routers reloads the same configuration.
""",
             tags=["generalisation", "incident", "config-change", "rollback"], seed=106)
    o = c.onset_rel()
    c.service("vm-frontend", 1, "compute", ["edge-network"], 30, "2025.04.2")
    c.service("lb-api", 1, "networking", ["edge-network"], 12, "9.14.0")
    c.service("edge-network", 1, "netops", [], 64, "netcfg-2025.04.11-r2")
    c.service("status-site", 3, "sre", [], 2, "1.0.4")
    healthy(c, "status-site", 0.0002, 90, 40, 0.1)
    c.m("edge-network",
        error_ratio=c.series(0.0003, (o - 3, 0.004), (o, 0.91, 3), noise=0.04),
        latency_p99_ms=c.series(18, (o, 16), noise=0.04),
        requests_per_second=c.series(88000, (o, 7200, 3), noise=0.02),
        saturation=c.series(0.38, (o, 0.05, 3), noise=0.03))
    c.prior("edge-network", error_ratio=0.0003)
    for svc, rps, lat in (("vm-frontend", 4100, 240), ("lb-api", 1900, 180)):
        c.m(svc,
            error_ratio=c.series(0.0006, (o, 0.86, 3), noise=0.04),
            latency_p99_ms=c.series(lat, (o, 10000, 2), noise=0.03),
            requests_per_second=c.series(rps, (o, rps * 0.35, 3), noise=0.03),
            saturation=c.series(0.4, (o, 0.22), noise=0.03))
        c.prior(svc, error_ratio=0.0006)
        c.every(svc, o + 1, END, 1, "ERROR",
                lambda n, at, svc=svc: f"{svc}: upstream connect error to edge-network: "
                                       "no route to host (prefix unreachable)", offset_s=14)
    c.deploy(o - 11, "edge-network", "netcfg-2025.04.11-r2", "netcfg-2025.04.11-r1",
             "netops-automation", kind="config")
    c.log("edge-network", o - 11, "INFO",
          "config netcfg-2025.04.11-r2 accepted: removing unused prefix 203.0.113.0/24")
    c.log("edge-network", o - 7, "WARN", "config consistency check: generated configuration "
          "lists 1 of 42 expected prefixes; canary result: FAILED")
    c.log("edge-network", o - 6, "WARN", "propagation continues: canary failure did not halt "
          "rollout (rule missing for this config type)")
    c.every("edge-network", o, END, 1, "ERROR",
            lambda n, at: f"bgp: withdrew {41 if n else 12} prefixes at site s{n % 14:02d}; "
                          "announcing 1 of 42", offset_s=9)
    for svc, when in (("edge-network", o + 2), ("vm-frontend", o + 3), ("lb-api", o + 3)):
        errs_alert(c, svc, when)
    rec = {"error_ratio": c.after(0.04, (3, 0.0006, 4)), "latency_p99_ms": c.after(240),
           "saturation": c.after(0.4)}
    c.outcome({"type": "rollback_deploy", "service": "edge-network"},
              "netcfg-2025.04.11-r1 re-pushed; prefixes announced again within minutes",
              {"edge-network": {"error_ratio": c.after(0.05, (3, 0.0003, 4)),
                                "requests_per_second": c.after(86000),
                                "saturation": c.after(0.38), "latency_p99_ms": c.after(18)},
               "vm-frontend": rec, "lb-api": dict(rec, latency_p99_ms=c.after(180))})
    c.expected = key("edge-network", "SEV1", ["incident"], "bad_deploy",
                     keywords=["netcfg-2025.04.11-r2"],
                     remediation=[act("rollback_deploy", "edge-network",
                                      to_version="netcfg-2025.04.11-r1")],
                     forbidden=[act("failover"), act("restart", "edge-network"),
                                act("scale_out"), act("rollback_deploy", "vm-frontend"),
                                act("rollback_deploy", "lb-api")],
                     approval=True, verification="passed")
    return c


def c07():
    c = Case("cloudflare-2019-waf-regex-cpu", now="2025-07-02T13:58:00Z",
             onset="2025-07-02T13:42:00Z",
             title="A new WAF rule pins every edge CPU; 502s worldwide",
             source="Cloudflare, 'Details of the Cloudflare outage on July 2, 2019' (John "
                    "Graham-Cumming): a WAF managed rule with a catastrophically backtracking "
                    "regular expression exhausted CPU on every edge machine",
             description="""
At 13:42 the WAF rules package waf-rules-2025.07.02.1 reached every edge proxy at once (rules
ship as configuration, not as a software release). One new rule's regular expression
backtracks catastrophically; CPU goes to 100% on every machine and the proxies return 502.
Request rate is flat: the saturation is not load. Rolling the rules back to
waf-rules-2025.06.28.3 fixes it (Cloudflare used a global kill of the managed rules, then
reverted). Scaling out adds machines that pin their CPU the same way; restarting reloads the
same rules.
""",
             tags=["generalisation", "incident", "config-change", "cpu", "rollback"], seed=107)
    o = c.onset_rel()
    c.service("edge-proxy", 1, "edge", ["origin-pool"], 200, "waf-rules-2025.07.02.1")
    c.service("origin-pool", 1, "edge", [], 40, "3.1.0")
    c.service("dashboard", 2, "product", ["edge-proxy"], 8, "21.7.0")
    c.m("edge-proxy",
        error_ratio=c.series(0.0004, (o, 0.78, 2), noise=0.04),
        latency_p99_ms=c.series(120, (o, 9000, 2), noise=0.04),
        requests_per_second=c.series(52000, noise=0.02),
        saturation=c.series(0.41, (o, 1.8, 2), noise=0.03),
        cpu_utilization=c.series(0.36, (o, 1.0, 1), noise=0.01, cap=1.0))
    c.prior("edge-proxy", error_ratio=0.0004)
    healthy(c, "origin-pool", 0.0003, 80, 31000, 0.35, cpu=0.33)
    c.m("origin-pool", requests_per_second=c.series(31000, (o, 9000, 2), noise=0.02))
    c.m("dashboard",
        error_ratio=c.series(0.0007, (o + 1, 0.52, 2), noise=0.05),
        latency_p99_ms=c.series(300, (o + 1, 8000), noise=0.04),
        requests_per_second=c.series(350, noise=0.03),
        saturation=c.series(0.3, noise=0.03))
    c.prior("dashboard", error_ratio=0.0007)
    c.deploy(o - 1, "edge-proxy", "waf-rules-2025.07.02.1", "waf-rules-2025.06.28.3", "waf-ci",
             kind="config")
    c.log("edge-proxy", o - 1, "INFO", "waf: rules package waf-rules-2025.07.02.1 activated "
          "(12 rules changed, 1 new rule in log-only mode)")
    c.every("edge-proxy", o, END, 0.5, "WARN",
            lambda n, at: f"waf: rule 100{35 + n % 2} evaluation took {600 + n * 7 % 400}ms on a "
                          f"{2 + n % 6}KB request body", offset_s=3)
    c.every("edge-proxy", o, END, 0.5, "ERROR",
            "502 Bad Gateway: worker did not respond in time (all workers busy)", offset_s=21)
    c.every("dashboard", o + 1, END, 1, "ERROR", "api call through edge failed: 502",
            offset_s=40)
    errs_alert(c, "edge-proxy", o + 2)
    c.alert("SaturationHigh", "edge-proxy", o + 3, "edge-proxy: saturation above 90% for 5m",
            "edge-proxy is near capacity.")
    errs_alert(c, "dashboard", o + 3)
    c.outcome({"type": "rollback_deploy", "service": "edge-proxy"},
              "waf-rules-2025.06.28.3 re-activated; CPU drops within a minute",
              {"edge-proxy": {"error_ratio": c.after(0.02, (2, 0.0004)),
                              "cpu_utilization": c.after(0.37), "saturation": c.after(0.41),
                              "latency_p99_ms": c.after(125)},
               "dashboard": {"error_ratio": c.after(0.0007, noise=0.1)},
               "origin-pool": {"requests_per_second": c.after(31000)}})
    c.expected = key("edge-proxy", "SEV1", ["incident", "performance"], "bad_deploy",
                     keywords=["waf-rules-2025.07.02.1"],
                     remediation=[act("rollback_deploy", "edge-proxy",
                                      to_version="waf-rules-2025.06.28.3")],
                     forbidden=[act("scale_out", "edge-proxy"), act("restart", "edge-proxy"),
                                act("failover")],
                     approval=True, verification="passed")
    return c


def c08():
    c = Case("facebook-2021-backbone-withdrawal", now="2025-10-04T15:58:00Z",
             onset="2025-10-04T15:40:00Z",
             title="Everything is unreachable, the internal tools too",
             source="Facebook (Meta) engineering, 'More details about the October 4 outage' "
                    "(Santosh Janardhan), 4 October 2021",
             description="""
A maintenance job meant to assess backbone capacity disconnected every data centre from the
backbone. The authoritative DNS servers, unable to reach the data centres, withdrew their
route announcements, so the domains stop resolving from the outside; internal tools and remote
access go down with them. Every edge service alerts; a messenger-api release 25 minutes earlier
is unrelated. Nothing in the catalogue, and no action the actuator has, helps: failing over has
nowhere to go (every region is cut off), restarts and rollbacks touch services that are fine,
adding capacity adds nothing. Escalate; recovery is hands-on (people in the data centres).
""",
             tags=["generalisation", "incident", "network", "total-outage", "novel",
                   "no-automatic-fix", "red-herring-deploy"], seed=108)
    o = c.onset_rel()
    c.service("www-edge", 1, "edge", ["backbone"], 120, "2025.40.1")
    c.service("api-edge", 1, "edge", ["backbone"], 80, "2025.40.1")
    c.service("messenger-api", 1, "messaging", ["backbone"], 60, "412.0.0")
    c.service("authoritative-dns", 1, "traffic", ["backbone"], 16, "7.2.1")
    c.service("backbone", 1, "network", [], 1, "fabric-2025.09")
    c.service("internal-tools", 2, "infra", ["backbone"], 10, "2025.39.7")
    for svc, rps in (("www-edge", 310000), ("api-edge", 190000), ("messenger-api", 85000)):
        c.m(svc,
            error_ratio=c.series(0.0004, (o, 0.97, 2), noise=0.01, cap=1.0),
            latency_p99_ms=c.series(150, (o, 30000, 2), noise=0.02),
            requests_per_second=c.series(rps, (o, rps * 0.03, 4), noise=0.03),
            saturation=c.series(0.45, (o, 0.04, 4), noise=0.03))
        c.prior(svc, error_ratio=0.0004)
        c.every(svc, o, END, 1, "ERROR",
                lambda n, at: f"backend connect failed: no route to host 10.{n % 200}.0.1 "
                              "(data centre unreachable)", offset_s=11)
    c.m("authoritative-dns",
        error_ratio=c.series(0.0001, (o + 1, 1.0), noise=0.0),
        latency_p99_ms=c.series(4, noise=0.05),
        requests_per_second=c.series(900000, (o + 1, 0, 1), noise=0.02),
        saturation=c.series(0.3, (o + 1, 0.0), noise=0.02))
    c.prior("authoritative-dns", error_ratio=0.0001)
    c.every("authoritative-dns", o, END, 1, "WARN",
            lambda n, at: f"health check: 0/18 data centres reachable; withdrawing anycast "
                          f"announcement from edge pop{n % 40:02d}", offset_s=30)
    c.m("internal-tools",
        error_ratio=c.series(0.001, (o, 1.0), noise=0.0),
        latency_p99_ms=c.series(300, (o, 30000), noise=0.02),
        requests_per_second=c.series(400, (o, 40, 2), noise=0.05),
        saturation=c.series(0.2, (o, 0.01), noise=0.05))
    c.prior("internal-tools", error_ratio=0.001)
    c.log("backbone", o - 2, "INFO",
          "maintenance job cap-audit-7781 started: assess global backbone capacity")
    c.log("backbone", o - 1, "WARN",
          "audit tool check skipped: command validation service returned no verdict")
    c.every("backbone", o, END, 1, "ERROR",
            lambda n, at: f"0 of 194 backbone links up; last state change {0.3 + n:.1f} min ago",
            offset_s=5)
    c.deploy(o - 25, "messenger-api", "412.0.0", "411.3.2", "messenger-ci")
    c.log("messenger-api", o - 25, "INFO", "deployed messenger-api 412.0.0 (previous 411.3.2)")
    for svc, when in (("www-edge", o + 2), ("api-edge", o + 2), ("messenger-api", o + 3),
                      ("internal-tools", o + 4)):
        errs_alert(c, svc, when)
    c.alert("DNSProbeFailed", "authoritative-dns", o + 3,
            "authoritative-dns: external probes get no answer for the main zones",
            "Blackbox DNS probes from three continents time out.", runbook=None)
    c.expected = key("backbone", "SEV1", ["incident"], "novel",
                     forbidden=[act("failover"), act("restart"), act("rollback_deploy"),
                                act("scale_out"), act("scale_in")])
    return c


def c09():
    c = Case("github-2018-partition-db-failover", now="2025-10-21T23:31:00Z",
             onset="2025-10-21T22:52:00Z",
             title="After a 43-second partition the metadata database has two histories",
             source="GitHub, 'October 21 post-incident analysis' (Jason Warner), October 2018",
             description="""
A 43-second loss of connectivity between the east-coast hub and its data centre made the cluster
manager promote west-coast replicas to primary. Writes made in the east during those seconds
never reached the west, the application now writes across the continent (latency up
several-fold, timeouts), and replicas serving reads lag by tens of minutes, so users see stale
data. Failing back east automatically would discard the west writes (or the east ones): the
integrity decision is a human's, and restarting the database makes it worse. No catalogue
runbook covers a split history after an automatic failover: escalate.
""",
             tags=["generalisation", "incident", "database", "replication", "novel",
                   "no-automatic-fix"], seed=109)
    o = c.onset_rel()
    c.service("web-app", 1, "web", ["repo-meta-db", "git-storage"], 60, "2018.10.21")
    c.service("api", 1, "api", ["repo-meta-db"], 40, "2018.10.21")
    c.service("webhook-dispatcher", 2, "integrations", ["repo-meta-db"], 12, "4.2.0")
    c.service("repo-meta-db", 1, "database", [], 9, "5.7.23", region="secondary")
    c.service("git-storage", 1, "git", [], 30, "3.9.1")
    healthy(c, "git-storage", 0.0002, 60, 8800, 0.4)
    c.m("repo-meta-db",
        error_ratio=c.series(0.0002, (o, 0.5), (o + 1, 0.03), noise=0.08),
        latency_p99_ms=c.series(6, (o + 1, 95), noise=0.04),
        requests_per_second=c.series(42000, (o + 1, 30000), noise=0.02),
        saturation=c.series(0.45, (o + 1, 0.68), noise=0.03))
    c.prior("repo-meta-db", error_ratio=0.0002)
    for svc, rps, lat, err in (("web-app", 16000, 380, 0.09), ("api", 9000, 210, 0.11)):
        c.m(svc,
            error_ratio=c.series(0.0005, (o, 0.3), (o + 1, err, 2), noise=0.06),
            latency_p99_ms=c.series(lat, (o + 1, lat * 6, 3), noise=0.04),
            requests_per_second=c.series(rps, noise=0.02),
            saturation=c.series(0.45, (o + 1, 0.79, 3), noise=0.03))
        c.prior(svc, error_ratio=0.0005)
    c.m("webhook-dispatcher",
        error_ratio=c.series(0.0008, (o + 1, 0.04), noise=0.08),
        latency_p99_ms=c.series(900, (o + 1, 12000, 5), noise=0.04),
        requests_per_second=c.series(700, (o + 1, 240), noise=0.04),
        saturation=c.series(0.5, (o + 1, 1.0, 10), noise=0.03))
    c.prior("webhook-dispatcher", error_ratio=0.0008)
    c.log("repo-meta-db", o, "WARN", "cluster manager: primary db-east-3 unreachable for 43s; "
          "promoting db-west-1 to primary (cross-region)")
    c.log("repo-meta-db", o + 1, "INFO", "connectivity to db-east-3 restored; db-east-3 "
          "demoted to read-only")
    c.log("repo-meta-db", o + 3, "ERROR", "db-east-3 holds 954 transactions not present on "
          "db-west-1 (errant GTID set); replication from db-east-3 refused")
    c.every("repo-meta-db", o + 4, END, 2, "WARN",
            lambda n, at: f"replica db-east-{5 + n % 3} lag {600 + n * 95}s behind primary "
                          "db-west-1", offset_s=33)
    c.every("web-app", o + 2, END, 1, "ERROR",
            lambda n, at: f"write to repo-meta-db timed out after 2000ms (primary db-west-1, "
                          f"rtt 61ms, {12 + n % 5} round trips)", offset_s=18)
    c.every("web-app", o + 3, END, 2, "WARN",
            "stale read: pull request list older than the user's last write (replica lag)",
            offset_s=47)
    c.every("api", o + 2, END, 1, "ERROR", "POST /repos/:id/issues -> 502: database write "
            "timeout", offset_s=26)
    c.alert("HighLatencyP99", "web-app", o + 5, "web-app: p99 latency 6x baseline",
            "p99 latency of web-app is far above its baseline.")
    errs_alert(c, "api", o + 5)
    c.alert("ReplicationLagHigh", "repo-meta-db", o + 9,
            "repo-meta-db: replica lag above 300s", "Read replicas are far behind the primary.",
            runbook=None, severity="page")
    c.expected = key("repo-meta-db", ["SEV1", "SEV2"], ["incident", "performance"], "novel",
                     forbidden=[act("failover", "repo-meta-db"), act("restart", "repo-meta-db"),
                                act("rollback_deploy"), act("restart", "web-app")])
    return c


def c10():
    c = Case("instapaper-2017-table-file-limit", now="2025-02-09T21:12:00Z",
             onset="2025-02-09T20:58:00Z",
             title="Saves fail: the table is full, the disk is not",
             source="Instapaper, 'Instapaper Outage Cause & Recovery' (Brian Donohue), "
                    "February 2017: a MySQL table's file reached the 2 TB per-file limit of "
                    "the ext3 filesystem under RDS",
             description="""
Every insert into the bookmarks table fails with MySQL error 1114 ("the table is full"): the
table's single data file reached the filesystem's 2 TiB per-file limit. The volume is 61% used
and not growing fast, so purging logs or expanding the volume changes nothing; reads keep
working. The replica has the same file on the same kind of filesystem, so a failover hits the
same limit, and a restart of the database only adds a recovery. Outside the catalogue: escalate
(the fix is a dump and restore onto another filesystem, days of work).
""",
             tags=["generalisation", "incident", "database", "storage-limit", "novel",
                   "no-automatic-fix"], seed=110)
    o = c.onset_rel()
    c.service("save-api", 1, "bookmarks", ["bookmarks-db"], 6, "3.14.1")
    c.service("reader-web", 1, "bookmarks", ["bookmarks-db"], 8, "5.2.0")
    c.service("bookmarks-db", 1, "database", [], 2, "5.6.34")
    c.m("bookmarks-db",
        error_ratio=c.series(0.0002, (o, 0.31), noise=0.05),
        latency_p99_ms=c.series(14, noise=0.05),
        requests_per_second=c.series(2300, noise=0.02),
        saturation=c.series(0.38, noise=0.03),
        disk_utilization=c.series(0.608, (o, 0.609), noise=0.001),
        cpu_utilization=c.series(0.3, noise=0.03))
    c.prior("bookmarks-db", error_ratio=0.0002)
    c.m("save-api",
        error_ratio=c.series(0.0005, (o, 0.97), noise=0.01, cap=1.0),
        latency_p99_ms=c.series(140, (o, 40), noise=0.05),
        requests_per_second=c.series(95, noise=0.04),
        saturation=c.series(0.2, noise=0.04))
    c.prior("save-api", error_ratio=0.0005)
    healthy(c, "reader-web", 0.0006, 260, 610, 0.35)
    c.every("bookmarks-db", o, END, 0.5, "ERROR",
            "ERROR 1114 (HY000): The table 'bookmarks' is full", offset_s=7)
    c.log("bookmarks-db", o, "WARN", "InnoDB: file ./instadb/bookmarks.ibd size "
          "2199023255040 bytes: cannot extend (File too large, errno 27)")
    c.every("save-api", o, END, 0.5, "ERROR",
            "save failed: upstream bookmarks-db: Error 1114: The table 'bookmarks' is full",
            offset_s=9)
    c.every("reader-web", -95, END, 10, "INFO", "served 36511 article reads in 10m")
    errs_alert(c, "save-api", o + 2)
    errs_alert(c, "bookmarks-db", o + 3)
    c.expected = key("bookmarks-db", "SEV1", ["incident", "remediation"], "novel",
                     forbidden=[act("restart", "bookmarks-db"), act("failover", "bookmarks-db"),
                                act("rollback_deploy"), act("restart", "save-api")])
    return c


def c11():
    c = Case("google-2020-quota-zero-auth", now="2025-12-14T12:09:00Z",
             onset="2025-12-14T11:47:00Z",
             title="Sign-in fails everywhere: the user-ID store's quota reads zero",
             source="Google Cloud, 'Google Cloud Infrastructure Components Incident #20013' "
                    "(14 December 2020): the User ID Service's storage quota was enforced as "
                    "zero after a quota-system migration left its usage reported as 0",
             description="""
Months ago the user-ID store moved to a new quota system; a leftover of the old one reports its
usage as zero, and when the grace period ended at 11:47 the quota enforcer set its allowance to
zero. Writes are rejected (RESOURCE_EXHAUSTED), tokens go stale, sign-in and every service
that checks identity fail. login-ui had a release 14 minutes before the onset: a red herring
(its errors only rise with everyone else's, and they are 503s from identity-api). The fix is a
quota override, not an action in the catalogue: escalate. A rollback of login-ui, a failover
(the quota is global) or restarts do nothing.
""",
             tags=["generalisation", "incident", "quota", "novel", "red-herring-deploy",
                   "no-automatic-fix"], seed=111)
    o = c.onset_rel()
    c.service("login-ui", 1, "identity-frontend", ["identity-api"], 20, "12.4.0")
    c.service("mail-web", 1, "mail", ["identity-api"], 40, "2025.50.2")
    c.service("identity-api", 1, "identity", ["user-id-store"], 30, "88.1.0")
    c.service("user-id-store", 1, "identity", [], 15, "41.0.2")
    c.m("user-id-store",
        error_ratio=c.series(0.0001, (o, 0.88, 2), noise=0.03),
        latency_p99_ms=c.series(9, (o, 4), noise=0.05),
        requests_per_second=c.series(52000, noise=0.02),
        saturation=c.series(0.4, (o, 0.3), noise=0.03))
    c.prior("user-id-store", error_ratio=0.0001)
    for svc, rps, lat, err in (("identity-api", 61000, 45, 0.64), ("login-ui", 9000, 350, 0.55),
                               ("mail-web", 120000, 500, 0.49)):
        c.m(svc,
            error_ratio=c.series(0.0005, (o + 1, err, 3), noise=0.05),
            latency_p99_ms=c.series(lat, (o + 1, lat * 1.3), noise=0.04),
            requests_per_second=c.series(rps, noise=0.02),
            saturation=c.series(0.4, noise=0.03))
        c.prior(svc, error_ratio=0.0005)
    c.deploy(o - 14, "login-ui", "12.4.0", "12.3.9", "identity-frontend-ci")
    c.log("login-ui", o - 14, "INFO", "deployed login-ui 12.4.0 (previous 12.3.9): new "
          "account-chooser layout")
    c.every("user-id-store", o, END, 0.5, "ERROR",
            lambda n, at: "write rejected: RESOURCE_EXHAUSTED: storage quota 0 B (usage "
                          "reported by quota-v1: 0 B, grace period ended)", offset_s=6)
    c.every("identity-api", o + 1, END, 0.5, "ERROR",
            "token lookup failed: upstream user-id-store: RESOURCE_EXHAUSTED", offset_s=13)
    c.every("login-ui", o + 1, END, 1, "ERROR", "sign-in failed: 503 from identity-api",
            offset_s=29)
    c.every("mail-web", o + 1, END, 1, "ERROR", "session check failed: 503 from identity-api",
            offset_s=39)
    for svc, when in (("identity-api", o + 3), ("login-ui", o + 4), ("mail-web", o + 4),
                      ("user-id-store", o + 4)):
        errs_alert(c, svc, when)
    c.expected = key("user-id-store", "SEV1", ["incident"], "novel",
                     forbidden=[act("rollback_deploy", "login-ui"), act("failover"),
                                act("restart", "identity-api"), act("restart", "user-id-store"),
                                act("scale_out")])
    return c
