from common import Case, act, healthy, key


def c01():
    c = Case("msteams-2020-expired-auth-cert", now="2025-02-03T14:21:00Z",
             onset="2025-02-03T14:07:00Z",
             title="Chat fails everywhere; the token service's TLS certificate expired",
             source="Microsoft Teams outage, 3 February 2020 (Microsoft's public statements: an "
                    "authentication certificate had expired, users could not sign in or chat)",
             description="""
The internal token service (authz) serves a TLS certificate that expired at 14:07. Its callers'
TLS clients refuse the handshake, so the requests never reach authz's application: authz's
own error ratio stays flat (its request rate falls instead) and it never alerts. chat-api,
presence and chat-web alert; their logs name authz's host in x509 "certificate has expired"
errors. chat-api had a release 50 minutes before the onset that changed nothing measurable
(a red herring). An experienced SRE blames authz's certificate and escalates: rotating a
certificate is not an action the actuator has, and rolling back or restarting the callers,
failing over or adding capacity does nothing for an expired certificate.
""",
             tags=["generalisation", "incident", "certificate", "silent-callee",
                   "red-herring-deploy", "no-automatic-fix"], seed=101)
    o = c.onset_rel()
    c.service("chat-web", 1, "clients", ["chat-api"], 12, "8.4.2")
    c.service("chat-api", 1, "messaging", ["authz", "message-store", "presence"], 16, "3.18.0")
    c.service("presence", 2, "messaging", ["authz"], 8, "2.2.7")
    c.service("authz", 1, "identity", [], 6, "5.0.3")
    c.service("message-store", 1, "storage", [], 9, "11.2.0")
    healthy(c, "message-store", 0.0003, 38, 4100, 0.41, cpu=0.38)
    c.m("authz",
        error_ratio=c.series(0.0004, noise=0.15),
        latency_p99_ms=c.series(24, (o, 19), noise=0.05),
        requests_per_second=c.series(2400, (o, 35), noise=0.04),
        saturation=c.series(0.46, (o, 0.05), noise=0.04),
        cpu_utilization=c.series(0.44, (o, 0.06), noise=0.04))
    c.prior("authz", error_ratio=0.0004)
    c.m("chat-api",
        error_ratio=c.series(0.0011, (o, 0.58), noise=0.08),
        latency_p99_ms=c.series(230, (o, 190), noise=0.05),
        requests_per_second=c.series(1800, noise=0.03),
        saturation=c.series(0.42, (o, 0.37), noise=0.03),
        cpu_utilization=c.series(0.40, (o, 0.33), noise=0.03))
    c.prior("chat-api", error_ratio=0.001)
    c.m("presence",
        error_ratio=c.series(0.0008, (o, 0.71), noise=0.06),
        latency_p99_ms=c.series(95, (o, 60), noise=0.05),
        requests_per_second=c.series(900, noise=0.03),
        saturation=c.series(0.35, noise=0.03))
    c.prior("presence", error_ratio=0.0008)
    c.m("chat-web",
        error_ratio=c.series(0.0006, (o + 1, 0.41), noise=0.08),
        latency_p99_ms=c.series(410, (o + 1, 380), noise=0.04),
        requests_per_second=c.series(2500, noise=0.03),
        saturation=c.series(0.38, noise=0.03))
    c.prior("chat-web", error_ratio=0.0006)
    c.deploy(o - 50, "chat-api", "3.18.0", "3.17.4", "messaging-ci")
    c.log("chat-api", o - 50, "INFO", "starting chat-api 3.18.0 (previous 3.17.4)")
    c.every("chat-api", -95, o - 1, 10, "INFO", "served 108211 requests in the last 10m")
    host = "authz.identity.internal:8443"

    def x509(n, at):
        return (f'token introspection failed: Post "https://{host}/v1/introspect": tls: failed '
                f"to verify certificate: x509: certificate has expired or is not yet valid: "
                f"current time {at:%Y-%m-%dT%H:%M:%SZ} is after 2025-02-03T14:07:00Z")
    c.every("chat-api", o, AFTER_END, 0.5, "ERROR", x509, offset_s=12)
    c.every("chat-api", o + 1, AFTER_END, 2, "WARN",
            "request rejected: 401 unauthenticated (no valid token)", offset_s=40)
    c.every("presence", o, AFTER_END, 1, "ERROR",
            lambda n, at: f"session check against {host} failed: x509: certificate has expired "
                          f"or is not yet valid", offset_s=5)
    c.every("chat-web", o + 1, AFTER_END, 1, "ERROR",
            "GET /api/v3/conversations -> 503 from chat-api", offset_s=30)
    c.every("authz", -95, o - 1, 5, "INFO",
            lambda n, at: f"issued {11900 + n * 7} tokens in the last 5m")
    c.every("authz", o, AFTER_END, 1, "WARN",
            lambda n, at: f"http: TLS handshake error from 10.20.{n % 7}.{31 + n % 50}:"
                          f"5{1200 + n}: remote error: tls: bad certificate", offset_s=3)
    c.every("authz", o, AFTER_END, 5, "INFO", "issued 0 tokens in the last 5m", offset_s=50)
    for svc, when in (("chat-api", o + 2), ("presence", o + 3), ("chat-web", o + 4)):
        c.alert("HighErrorRate", svc, when, f"{svc}: error ratio above 5% over 5m",
                f"More than 5% of requests to {svc} fail.")
    c.expected = key("authz", "SEV1", ["incident"], "certificate_expiry",
                     forbidden=[act("rollback_deploy", "chat-api"), act("restart", "chat-api"),
                                act("restart", "presence"), act("failover"),
                                act("scale_out")])
    return c


AFTER_END = 29


def c02():
    c = Case("dyn-2016-managed-dns-outage", now="2025-10-21T12:14:00Z",
             onset="2025-10-21T12:03:00Z",
             title="Card charges fail: names under the provider's zone stop resolving",
             source="Dyn managed DNS outage (DDoS on Dyn's resolvers), 21 October 2016 (Dyn's "
                    "public analysis; many sites whose DNS was hosted only at Dyn went dark)",
             description="""
The managed DNS provider that hosts both the card processor's zone and our own external names is
failing (SERVFAIL / timeouts). checkout-api cannot resolve the card processor's primary
endpoint, nor its secondary-region endpoint (same zone, same DNS provider), and notifier cannot
resolve the mail relay. Answers still cached in resolvers let some requests through. The card
processor itself is up (its status page and a direct-IP probe are fine). The right call is to
escalate (a second DNS provider / pinned addresses are human decisions): failing over to the
secondary endpoint shares the failing DNS and fixes nothing; restarts flush the resolver caches
that keep a fraction of charges working.
""",
             tags=["generalisation", "incident", "dns", "shared-dependency", "no-automatic-fix"],
             seed=102)
    o = c.onset_rel()
    c.service("storefront", 1, "web", ["checkout-api"], 10, "14.2.0")
    c.service("checkout-api", 1, "checkout", ["card-processor", "managed-dns"], 8, "6.3.1")
    c.service("card-processor", 1, "vendor", ["managed-dns"], 1, "external")
    c.service("notifier", 3, "messaging", ["managed-dns"], 3, "1.9.0")
    c.service("managed-dns", 1, "vendor", [], 1, "external")
    c.m("checkout-api",
        error_ratio=c.series(0.0009, (o, 0.31), (o + 4, 0.56), noise=0.07),
        latency_p99_ms=c.series(420, (o, 5100), noise=0.04),
        requests_per_second=c.series(160, noise=0.04),
        saturation=c.series(0.41, (o, 0.62), noise=0.04))
    c.prior("checkout-api", error_ratio=0.0009)
    c.m("storefront",
        error_ratio=c.series(0.0005, (o + 1, 0.22), noise=0.08),
        latency_p99_ms=c.series(600, (o + 1, 5400), noise=0.04),
        requests_per_second=c.series(1300, noise=0.03),
        saturation=c.series(0.37, (o + 1, 0.45), noise=0.03))
    c.prior("storefront", error_ratio=0.0005)
    c.m("notifier",
        error_ratio=c.series(0.002, (o, 0.64), noise=0.06),
        latency_p99_ms=c.series(800, (o, 5000), noise=0.04),
        requests_per_second=c.series(22, noise=0.05),
        saturation=c.series(0.2, (o, 0.3), noise=0.04))
    c.prior("notifier", error_ratio=0.002)
    c.every("checkout-api", -95, o - 1, 10, "INFO",
            lambda n, at: f"charges authorised in the last 10m: {1430 + n * 3}")

    def lookup(n, at):
        host = "api.cardproc.example.com" if n % 3 else "api-secondary.cardproc.example.com"
        why = "server misbehaving" if n % 2 else "i/o timeout"
        return (f'charge failed: Post "https://{host}/v2/charges": dial tcp: lookup {host} on '
                f"10.0.0.2:53: {why}")
    c.every("checkout-api", o, AFTER_END, 0.5, "ERROR", lookup, offset_s=8)
    c.every("checkout-api", o + 2, AFTER_END, 3, "WARN",
            "charge retried against secondary endpoint api-secondary.cardproc.example.com: "
            "lookup failed (SERVFAIL from 10.0.0.2)", offset_s=44)
    c.every("notifier", o, AFTER_END, 1, "ERROR",
            "smtp dial smtp.relay.mailvendor.example.com:587 failed: lookup "
            "smtp.relay.mailvendor.example.com on 10.0.0.2:53: server misbehaving", offset_s=20)
    c.every("storefront", o + 1, AFTER_END, 1, "ERROR",
            "POST /checkout -> 502: checkout-api charge failed", offset_s=35)
    for svc, when in (("checkout-api", o + 3), ("notifier", o + 3), ("storefront", o + 4)):
        c.alert("HighErrorRate", svc, when, f"{svc}: error ratio above 5% over 5m",
                f"More than 5% of requests to {svc} fail.")
    c.expected = key("managed-dns", "SEV1", ["incident"], "dependency_outage",
                     forbidden=[act("failover"), act("restart", "checkout-api"),
                                act("restart", "storefront"), act("rollback_deploy"),
                                act("scale_out")])
    return c


def c03():
    c = Case("dynamodb-2015-retry-amplification", now="2025-09-20T09:48:00Z",
             onset="2025-09-20T09:31:00Z",
             title="Membership service overloaded by its own clients' retries",
             source="AWS, 'Summary of the Amazon DynamoDB Service Disruption and Related Impacts "
                    "in the US-East Region', 20 September 2015",
             description="""
A two-minute network blip at 09:31 slowed the membership service. Storage nodes whose membership
requests timed out retried immediately and repeatedly; the retries kept the membership service
overloaded after the blip ended, and nodes that could not confirm their membership took
themselves out of service, so the table API fails. The membership service's request rate is four
times its usual level while the table API's incoming traffic is flat: the load is amplification,
not demand. No runbook in the catalogue covers a retry storm; the right answer is to escalate
(pause or back off the retries, shed load). Adding storage-node or table-api capacity adds
retrying clients; restarting the membership service drops in-flight work and invites a
reconnect storm.
""",
             tags=["generalisation", "capacity", "retry-storm", "metastable", "novel",
                   "no-automatic-fix"], seed=103)
    o = c.onset_rel()
    c.service("table-api", 1, "database-frontend", ["storage-node"], 40, "2015.9.1")
    c.service("storage-node", 1, "storage", ["membership-svc"], 120, "8.12.4")
    c.service("membership-svc", 1, "storage", [], 10, "3.4.0")
    c.m("table-api",
        error_ratio=c.series(0.0004, (o + 6, 0.09, 5), (o + 11, 0.24, 4), noise=0.06),
        latency_p99_ms=c.series(18, (o + 6, 900, 6), noise=0.05),
        requests_per_second=c.series(9100, noise=0.02),
        saturation=c.series(0.48, (o + 6, 0.55), noise=0.03))
    c.prior("table-api", error_ratio=0.0004)
    c.m("storage-node",
        error_ratio=c.series(0.0003, (o + 4, 0.12, 6), (o + 10, 0.22, 4), noise=0.06),
        latency_p99_ms=c.series(12, (o + 4, 700, 6), noise=0.05),
        requests_per_second=c.series(30500, noise=0.02),
        saturation=c.series(0.52, (o + 4, 0.6), noise=0.03),
        cpu_utilization=c.series(0.5, (o + 4, 0.58), noise=0.03))
    c.prior("storage-node", error_ratio=0.0003)
    c.m("membership-svc",
        error_ratio=c.series(0.0002, (o, 0.08), (o + 2, 0.19, 8), (o + 10, 0.35, 5),
                             noise=0.05),
        latency_p99_ms=c.series(40, (o, 2200), (o + 2, 5000, 6), noise=0.04),
        requests_per_second=c.series(1200, (o, 1500), (o + 2, 5200, 10), noise=0.03),
        saturation=c.series(0.47, (o, 0.9), (o + 2, 1.35, 8), noise=0.03),
        cpu_utilization=c.series(0.45, (o, 0.8), (o + 2, 0.98, 6), noise=0.02, cap=1.0))
    c.prior("membership-svc", error_ratio=0.0002)
    c.every("storage-node", o + 1, AFTER_END, 0.5, "WARN",
            lambda n, at: f"membership refresh to membership-svc timed out after 5000ms "
                          f"(attempt {n % 5 + 1}), retrying immediately", offset_s=6)
    c.every("storage-node", o + 5, AFTER_END, 1, "ERROR",
            lambda n, at: f"node sn-{(n * 37) % 120:03d} could not confirm membership; "
                          "leaving serving rotation", offset_s=50)
    c.every("membership-svc", o + 1, AFTER_END, 1, "WARN",
            lambda n, at: f"request queue depth {12000 + n * 900} exceeds 10000; oldest request "
                          f"waited {4.1 + n * 0.1:.1f}s", offset_s=15)
    c.every("membership-svc", o + 2, AFTER_END, 1, "WARN",
            "client deadline passed before processing; response discarded", offset_s=41)
    c.every("table-api", o + 7, AFTER_END, 1, "ERROR",
            "GetItem -> 500 InternalServerError: partition unavailable", offset_s=25)
    c.alert("SaturationHigh", "membership-svc", o + 8,
            "membership-svc: saturation above 90% for 5m", "membership-svc is near capacity.")
    c.alert("HighErrorRate", "storage-node", o + 10, "storage-node: error ratio above 5% over 5m",
            "More than 5% of requests to storage-node fail.")
    c.alert("HighErrorRate", "table-api", o + 12, "table-api: error ratio above 5% over 5m",
            "More than 5% of requests to table-api fail.")
    c.expected = key("membership-svc", "SEV1", ["capacity", "incident", "performance"], "novel",
                     forbidden=[act("scale_out", "storage-node"), act("scale_out", "table-api"),
                                act("restart", "membership-svc"),
                                act("restart", "storage-node"), act("failover")])
    return c


def c04():
    c = Case("facebook-2010-cache-db-overload", now="2025-09-23T18:44:00Z",
             onset="2025-09-23T18:31:00Z",
             title="Every client falls through the cache to the profile database",
             source="Facebook, 'More Details on Today's Outage' (Robert Johnson), "
                    "23 September 2010",
             description="""
A shared configuration value that profile-api caches was judged invalid by an automated check;
every profile-api instance deleted its cached copy and went to profile-db to reload it. The
database saturated, queries failed, and the failures were read as an invalid value again, so
the cache never warmed. profile-cache itself is healthy (it answers, it is being emptied).
The catalogue's "cache stopped serving hits, everything goes to the database" is the right
category; the runbook's answer (escalate) is right: breaking the loop means stopping traffic
to the database, a human decision. Scaling profile-api out adds clients hammering the database;
restarting or failing over profile-db or restarting the cache makes it worse.
""",
             tags=["generalisation", "performance", "cache", "metastable", "no-automatic-fix"],
             seed=104)
    o = c.onset_rel()
    c.service("www", 1, "web", ["profile-api"], 30, "2010.9.23")
    c.service("profile-api", 1, "profiles", ["profile-cache", "profile-db"], 24, "7.1.2")
    c.service("profile-cache", 2, "cache", [], 12, "1.6.21")
    c.service("profile-db", 1, "database", [], 6, "8.0.36")
    c.m("www",
        error_ratio=c.series(0.0005, (o + 3, 0.17, 4), noise=0.07),
        latency_p99_ms=c.series(520, (o + 1, 4200, 4), noise=0.04),
        requests_per_second=c.series(21000, noise=0.02),
        saturation=c.series(0.44, (o + 2, 0.71), noise=0.03))
    c.prior("www", error_ratio=0.0005)
    c.m("profile-api",
        error_ratio=c.series(0.0006, (o + 2, 0.24, 5), noise=0.06),
        latency_p99_ms=c.series(160, (o, 3600, 4), noise=0.04),
        requests_per_second=c.series(15500, noise=0.02),
        saturation=c.series(0.4, (o, 0.83, 4), noise=0.03),
        cpu_utilization=c.series(0.38, (o, 0.31), noise=0.03))
    c.prior("profile-api", error_ratio=0.0006)
    c.m("profile-cache",
        error_ratio=c.series(0.0001, noise=0.2),
        latency_p99_ms=c.series(2.1, (o, 2.4), noise=0.05),
        requests_per_second=c.series(61000, (o, 52000), noise=0.02),
        saturation=c.series(0.35, (o, 0.31), noise=0.03))
    c.prior("profile-cache", error_ratio=0.0001)
    c.m("profile-db",
        error_ratio=c.series(0.0001, (o + 1, 0.3, 5), noise=0.06),
        latency_p99_ms=c.series(9, (o, 3000, 4), noise=0.04),
        requests_per_second=c.series(900, (o, 14000, 3), noise=0.03),
        saturation=c.series(0.42, (o, 1.6, 4), noise=0.03),
        cpu_utilization=c.series(0.4, (o, 0.99, 3), noise=0.01, cap=1.0))
    c.prior("profile-db", error_ratio=0.0001)
    c.every("profile-api", o, AFTER_END, 0.5, "WARN",
            lambda n, at: f"config key profile.shard_map failed validation on instance "
                          f"pa-{n % 24:02d}; deleting cached copy and reloading from profile-db",
            offset_s=4)
    c.every("profile-api", o + 1, AFTER_END, 0.5, "ERROR",
            "reload of profile.shard_map from profile-db timed out after 3000ms", offset_s=33)
    c.every("profile-cache", o, AFTER_END, 1, "INFO",
            lambda n, at: f"delete cfg:profile.shard_map from 10.8.{n % 9}.{20 + n % 40}: "
                          f"{900 + n * 11} deletes/s for this key", offset_s=10)
    c.every("profile-db", o + 1, AFTER_END, 1, "WARN",
            lambda n, at: f"too many connections ({3990 + n % 9}/4000); slow query 2.{n % 9}s: "
                          "SELECT value FROM config_values WHERE name = ?", offset_s=20)
    c.every("www", o + 3, AFTER_END, 1, "ERROR", "GET /profile -> 500: upstream profile-api "
            "timeout", offset_s=50)
    c.alert("HighLatencyP99", "profile-api", o + 4, "profile-api: p99 latency 20x baseline",
            "p99 latency of profile-api is far above its baseline.")
    c.alert("SaturationHigh", "profile-db", o + 5, "profile-db: saturation above 90% for 5m",
            "profile-db is near capacity.")
    c.alert("HighErrorRate", "www", o + 6, "www: error ratio above 5% over 5m",
            "More than 5% of requests to www fail.")
    c.expected = key("profile-api", "SEV1", ["performance", "incident"], "cache_hit_collapse",
                     forbidden=[act("scale_out", "profile-api"), act("scale_out", "www"),
                                act("restart", "profile-db"), act("failover", "profile-db"),
                                act("restart", "profile-cache")])
    return c


def c05():
    c = Case("aws-ebs-2012-slow-agent-leak", now="2025-10-22T10:52:00Z",
             onset="2025-10-21T15:30:00Z",
             title="Storage servers' memory creeps up a few percent an hour",
             source="AWS, 'Summary of the October 22, 2012 AWS Service Event in the US-East "
                    "Region' (a latent memory leak in an operational data-collection agent on "
                    "EBS storage servers)",
             description="""
Since yesterday afternoon the data-collection agent on the volume servers has been leaking
memory: it keeps retrying a collector address that now points at a decommissioned host and
never frees the buffered reports. Memory climbs about 3% of the limit per hour on flat traffic;
it reached the alert threshold this morning and I/O latency is starting to stretch. No deploy of
the volume servers in weeks. A rolling restart buys a day and is the catalogue's answer
(memory_leak -> restart); the code fix (and the collector address) follow. Nothing calls for a
rollback (there is no recent release) or a failover.
""",
             tags=["generalisation", "remediation", "memory", "slow-leak"], seed=105)
    c.service("volume-api", 1, "block-storage", ["volume-server"], 20, "2012.10.1")
    c.service("volume-server", 1, "block-storage", [], 48, "4.18.2")
    # 3% of the limit per hour = 0.0005 a minute; 0.80 at the start of the recording.
    c.m("volume-server",
        memory_utilization=c.series(0.806, (-BEF + 1, 0.806 + 0.0005 * 129, 129), noise=0.004),
        error_ratio=c.series(0.0008, (-40, 0.0016, 30), (-10, 0.0028, 40), noise=0.1),
        latency_p99_ms=c.series(31, (-60, 44, 60), (0, 58, 30), noise=0.04),
        requests_per_second=c.series(5400, noise=0.02),
        saturation=c.series(0.55, (-60, 0.61, 60), noise=0.02),
        cpu_utilization=c.series(0.41, (-60, 0.47, 60), noise=0.02))
    c.prior("volume-server", error_ratio=0.0008, memory_utilization=0.55)
    healthy(c, "volume-api", 0.0004, 60, 3100, 0.4, cpu=0.35)
    c.every("volume-server", -95, AFTER_END, 5, "WARN",
            lambda n, at: f"stats agent: report upload to collector-03.ops.internal failed "
                          f"(connect: no route to host); {1840 + n * 9} reports buffered, agent "
                          f"rss {2.90 + n * 0.012:.2f} GiB", offset_s=17)
    c.every("volume-server", -40, AFTER_END, 10, "WARN",
            lambda n, at: f"memory pressure: page cache reclaimed, swap in use {300 + n * 40} MiB",
            offset_s=44)
    c.every("volume-server", -95, AFTER_END, 15, "INFO", "volume I/O ok: 0 stuck volumes")
    c.alert("MemoryHigh", "volume-server", -3, "volume-server: memory above 85% of the limit",
            "volume-server's memory use is close to its limit.", severity="ticket")
    after_mem = c.after(0.41, (1, 0.41 + 0.0005 * 29, 29), noise=0.004)
    c.outcome({"type": "restart", "service": "volume-server"},
              "rolling restart of the volume servers; the agent starts with empty buffers",
              {"volume-server": {"memory_utilization": after_mem,
                                 "latency_p99_ms": c.after(33, noise=0.04),
                                 "error_ratio": c.after(0.0008, noise=0.1),
                                 "saturation": c.after(0.55, noise=0.02)}})
    c.expected = key("volume-server", "SEV3", ["remediation"], "memory_leak",
                     remediation=[act("restart", "volume-server")],
                     forbidden=[act("rollback_deploy"), act("failover"),
                                act("scale_in", "volume-server")],
                     verification="passed")
    return c


BEF = 99
