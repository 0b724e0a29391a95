from cases_b import END, errs_alert
from common import Case, act, healthy, key


def c17():
    c = Case("af447-2009-single-instrument-spike", now="2025-06-01T02:19:00Z",
             onset="2025-06-01T02:12:00Z",
             title="One metric of one service says half the requests fail; nothing else agrees",
             source="BEA, 'Final Report on the accident on 1st June 2009 to the Airbus A330-203 "
                    "registered F-GZCP, flight AF 447 Rio de Janeiro - Paris' (July 2012): one "
                    "instrument (airspeed) failed, the others were consistent, and the response "
                    "to the failed reading did the harm (aviation, not software: the pattern)",
             description="""
search-api's metrics exporter restarted at 02:11 and its error counter was read across the
reset: the computed error ratio jumps to about 45%. Nothing else moves: search-api's own
latency, request rate and saturation are flat, its logs show requests served normally (200s)
and no errors, and its only caller (web-frontend) sees no errors and no latency change. This is
a telemetry artifact until something corroborates it: an experienced SRE flags it, keeps the
severity low and changes nothing in production. A rollback, restart, failover or scale-out
would be acting on a broken instrument.
""",
             tags=["generalisation", "telemetry", "uncorroborated", "novel", "no-automatic-fix"],
             seed=117)
    o = c.onset_rel()
    c.service("web-frontend", 1, "web", ["search-api"], 16, "19.0.3")
    c.service("search-api", 1, "search", ["search-index"], 12, "4.31.0")
    c.service("search-index", 2, "search", [], 9, "8.11.1")
    healthy(c, "web-frontend", 0.0007, 380, 2900, 0.36)
    healthy(c, "search-index", 0.0002, 40, 2600, 0.41)
    c.m("search-api",
        error_ratio=c.series(0.0009, (o, 0.46), (o + 12, 0.0009), noise=0.08),
        latency_p99_ms=c.series(160, noise=0.04),
        requests_per_second=c.series(2400, noise=0.03),
        saturation=c.series(0.39, noise=0.03),
        cpu_utilization=c.series(0.35, noise=0.03))
    c.prior("search-api", error_ratio=0.0009)
    c.every("search-api", -95, END, 1, "INFO",
            lambda n, at: f"GET /v2/search 200: {2350 + (n * 37) % 110} requests/s, p99 "
                          f"{150 + n % 17}ms, 5xx 0.{n % 2}%", offset_s=30)
    c.log("search-api", o - 1, "INFO", "metrics exporter restarted (pid 48812); counters "
          "re-registered")
    c.every("web-frontend", -95, END, 5, "INFO", "search results rendered: 0 upstream errors "
            "in the last 5m", offset_s=15)
    c.alert("HighErrorRate", "search-api", o + 2, "search-api: error ratio 46.0% over 5m",
            "More than 5% of requests to search-api fail.")
    c.expected = key("search-api", ["SEV3", "SEV4"], ["health", "incident", "performance"],
                     "novel",
                     forbidden=[act("rollback_deploy"), act("restart"), act("failover"),
                                act("scale_out"), act("replace_instance")])
    return c


def c18():
    c = Case("pokemongo-2016-launch-load", now="2025-07-06T19:40:00Z",
             onset="2025-07-06T19:00:00Z",
             title="Launch-day traffic three times the forecast saturates the game API",
             source="Google Cloud Platform blog, 'Bringing Pokemon GO to life on Google Cloud' "
                    "(Luke Stone), September 2016: launch traffic reached 50x the target "
                    "estimate and capacity was added to keep up",
             description="""
Launch in a new region: player traffic at the edge and at the game API has tripled over forty
minutes and is still climbing. The game API's replicas are saturated, it sheds load (503) and
its latency climbs; its database is comfortable. No deploy, no flag, no error pattern besides
load shedding. This is demand, not amplification: the edge's incoming traffic rose exactly as
much as the API's. Scale the game API out in proportion (the capacity runbook's answer).
Restarting or rolling back does not add capacity; scaling in would be absurd.
""",
             tags=["generalisation", "capacity", "load", "scale-out"], seed=118)
    o = c.onset_rel()
    c.service("game-frontend", 1, "game", ["game-api"], 20, "0.29.1")
    c.service("game-api", 1, "game", ["player-db"], 8, "0.29.1")
    c.service("player-db", 1, "database", [], 6, "spanner")
    c.m("game-frontend",
        requests_per_second=c.series(8000, (o, 25000, 40), noise=0.03),
        error_ratio=c.series(0.0005, (o + 30, 0.03, 10), noise=0.06),
        latency_p99_ms=c.series(220, (o + 20, 900, 20), noise=0.04),
        saturation=c.series(0.35, (o, 0.7, 40), noise=0.03))
    c.prior("game-frontend", error_ratio=0.0005)
    c.m("game-api",
        requests_per_second=c.series(6000, (o, 19000, 40), noise=0.03),
        error_ratio=c.series(0.0008, (o + 28, 0.045, 12), noise=0.06),
        latency_p99_ms=c.series(140, (o + 20, 950, 20), noise=0.04),
        saturation=c.series(0.36, (o, 1.12, 40), noise=0.02),
        cpu_utilization=c.series(0.35, (o, 0.97, 40), noise=0.02, cap=1.0),
        replicas=c.series(8, noise=0.0))
    c.prior("game-api", error_ratio=0.0008)
    c.m("player-db",
        requests_per_second=c.series(14000, (o, 41000, 40), noise=0.03),
        error_ratio=c.series(0.0001, noise=0.2),
        latency_p99_ms=c.series(11, (o, 14, 40), noise=0.04),
        saturation=c.series(0.21, (o, 0.6, 40), noise=0.03))
    c.prior("player-db", error_ratio=0.0001)
    c.every("game-frontend", o, END, 5, "INFO",
            lambda n, at: f"new sessions in the last 5m: {61000 + n * 21000} (launch region)",
            offset_s=10)
    c.every("game-api", o + 25, END, 0.5, "WARN",
            lambda n, at: f"request shed (503): {1700 + n * 11} in flight > limit 1600",
            offset_s=5)
    c.alert("SaturationHigh", "game-api", -9, "game-api: saturation above 90% for 5m",
            "game-api is near capacity.")
    c.alert("HighLatencyP99", "game-api", -6, "game-api: p99 latency 5x baseline",
            "p99 latency of game-api is far above its baseline.")
    errs_alert(c, "game-api", -1)
    ok = {"game-api": {"saturation": c.after(0.9, (3, 0.4, 5)),
                       "error_ratio": c.after(0.02, (3, 0.0008, 5)),
                       "latency_p99_ms": c.after(600, (3, 150, 5)),
                       "cpu_utilization": c.after(0.8, (3, 0.38, 5)),
                       "requests_per_second": c.after(19500)},
          "game-frontend": {"error_ratio": c.after(0.01, (4, 0.0006, 4)),
                            "latency_p99_ms": c.after(500, (4, 230, 4))}}
    c.outcome({"type": "scale_out", "service": "game-api"},
              "game-api scaled out; new replicas ready in three minutes", ok)
    c.expected = key("game-api", "SEV2", ["capacity"], "traffic_surge",
                     remediation=[act("scale_out", "game-api")],
                     forbidden=[act("restart", "game-api"), act("rollback_deploy"),
                                act("scale_in"), act("failover")],
                     verification="passed")
    return c


def c19():
    c = Case("slack-2016-job-queue-backlog", now="2025-05-12T16:25:00Z",
             onset="2025-05-12T15:35:00Z",
             title="The job queue's memory fills because jobs got slow",
             source="Slack Engineering, 'Scaling Slack's Job Queue' (Saroj Yadav, Matthew "
                    "Smillie, Mike Demmer, Tyler Johnson), 2020: the 2016 incident in which a "
                    "database slowdown made jobs slow, the Redis job queue filled its memory and "
                    "could no longer dequeue",
             description="""
At 15:35 the chat database slowed down (lock contention on one hot table). Jobs that touch it
take ten times longer, the workers fall behind, and the backlog grows in the job queue's
memory until enqueues start failing with "OOM command not allowed" and chat-api returns errors.
The memory alert is on the queue, but the queue is the victim: restarting it (the memory
runbook) throws away 2.8 million queued jobs, adding workers adds load to the slow database,
and failing the queue over can drop whatever was not yet replicated. Outside the catalogue:
escalate (find the database's blocker, throttle enqueues).
""",
             tags=["generalisation", "remediation", "queue", "backlog", "novel",
                   "no-automatic-fix"], seed=119)
    o = c.onset_rel()
    c.service("chat-api", 1, "messaging", ["job-queue", "chat-db"], 30, "2016.5.12")
    c.service("job-queue", 1, "async", [], 4, "3.2.1")
    c.service("job-worker", 2, "async", ["job-queue", "chat-db"], 40, "2016.5.12")
    c.service("chat-db", 1, "database", [], 8, "5.6.29")
    c.m("chat-db",
        latency_p99_ms=c.series(8, (o, 130, 5), noise=0.05),
        error_ratio=c.series(0.0002, (o, 0.004), noise=0.1),
        requests_per_second=c.series(22000, (o, 17000), noise=0.02),
        saturation=c.series(0.5, (o, 0.74), noise=0.03),
        cpu_utilization=c.series(0.45, (o, 0.52), noise=0.03))
    c.prior("chat-db", error_ratio=0.0002)
    c.m("job-worker",
        saturation=c.series(0.5, (o, 1.0, 6), noise=0.02, cap=1.02),
        latency_p99_ms=c.series(900, (o, 9800, 8), noise=0.04),
        requests_per_second=c.series(3100, (o, 700, 6), noise=0.03),
        error_ratio=c.series(0.001, (o, 0.006), noise=0.1),
        cpu_utilization=c.series(0.55, (o, 0.2, 6), noise=0.03))
    c.prior("job-worker", error_ratio=0.001)
    c.m("job-queue",
        memory_utilization=c.series(0.42, (o, 0.93, 44), (1, 0.99, 20), noise=0.005, cap=0.995),
        requests_per_second=c.series(6300, (o, 4000, 10), noise=0.03),
        error_ratio=c.series(0.0001, (-9, 0.07, 4), noise=0.1),
        latency_p99_ms=c.series(2, (o, 3), noise=0.05),
        saturation=c.series(0.3, noise=0.03))
    c.prior("job-queue", error_ratio=0.0001)
    c.m("chat-api",
        error_ratio=c.series(0.0006, (-9, 0.062, 4), noise=0.06),
        latency_p99_ms=c.series(240, (-9, 380), noise=0.04),
        requests_per_second=c.series(14000, noise=0.02),
        saturation=c.series(0.43, noise=0.03))
    c.prior("chat-api", error_ratio=0.0006)
    c.every("chat-db", o, END, 1, "WARN",
            lambda n, at: f"slow query {1.2 + (n % 9) / 10:.1f}s (lock wait "
                          f"{1.0 + (n % 9) / 10:.1f}s): UPDATE channel_members SET last_read = ? "
                          "WHERE ...", offset_s=19)
    c.every("job-worker", o + 2, END, 1, "WARN",
            lambda n, at: f"job mark_read took {8 + n % 4}.{n % 10}s "
                          f"(database {7 + n % 4}.{n % 9}s)",
            offset_s=33)
    c.every("job-queue", o + 5, END, 5, "WARN",
            lambda n, at: f"used_memory {6.7 + n * 0.85:.1f}G of maxmemory 16G; "
                          f"{(0.3 + n * 0.26):.2f}M jobs pending", offset_s=1)
    c.every("chat-api", -9, END, 0.5, "ERROR",
            "enqueue mark_read failed: OOM command not allowed when used memory > 'maxmemory'",
            offset_s=9)
    c.alert("MemoryHigh", "job-queue", -12, "job-queue: memory above 85% of the limit",
            "job-queue's memory use is close to its limit.")
    errs_alert(c, "chat-api", -3)
    c.expected = key("job-queue", "SEV2", ["remediation", "incident", "capacity", "performance"],
                     "novel",
                     forbidden=[act("restart", "job-queue"), act("scale_out", "job-worker"),
                                act("failover", "job-queue"), act("restart", "chat-db")])
    return c


def c20():
    c = Case("knight-2012-repurposed-flag", now="2025-08-01T13:44:00Z",
             onset="2025-08-01T13:31:00Z",
             title="A reused flag wakes dead code on the one server the release missed",
             source="SEC, 'In the Matter of Knight Capital Americas LLC' (Release No. 70694, "
                    "October 2013), on Knight's 1 August 2012 trading loss",
             description="""
order-router 4.0.0 went out two days ago to seven of the eight instances; router-8 still runs
3.9.7, whose old handler is behind the same flag key the new code reuses. At 13:30 trading
operations turned the flag on for everyone: router-8 sends child orders in a loop (it no longer
counts fills) and floods the exchange gateway, which throttles. The flag is the switch: turning
it off stops router-8. Rolling order-router back (to 3.9.7 everywhere) is what made Knight's
loss worse: it puts the old handler, with the flag on, on all eight instances. Adding capacity
to the gateway lets more bad orders through.
""",
             tags=["generalisation", "rollout", "flag", "partial-deploy", "rollback-harmful"],
             seed=120)
    o = c.onset_rel()
    c.service("order-entry", 1, "trading", ["order-router"], 6, "7.2.0")
    c.service("order-router", 1, "trading", ["exchange-gateway"], 8, "4.0.0")
    c.service("exchange-gateway", 1, "trading", [], 6, "2.8.1")
    healthy(c, "order-entry", 0.0004, 12, 1800, 0.3)
    c.m("order-router",
        requests_per_second=c.series(1800, noise=0.03),
        error_ratio=c.series(0.0005, (o + 1, 0.09, 3), noise=0.06),
        latency_p99_ms=c.series(6, (o, 9), noise=0.05),
        saturation=c.series(0.33, (o, 0.41), noise=0.03),
        cpu_utilization=c.series(0.3, (o, 0.37), noise=0.03))
    c.prior("order-router", error_ratio=0.0005)
    c.m("exchange-gateway",
        requests_per_second=c.series(2000, (o, 41000, 3), noise=0.03),
        error_ratio=c.series(0.0003, (o + 1, 0.23, 3), noise=0.05),
        latency_p99_ms=c.series(4, (o, 38, 3), noise=0.05),
        saturation=c.series(0.35, (o, 0.97, 3), noise=0.02),
        cost_per_hour=c.series(14, (o, 260, 3), noise=0.03))
    c.prior("exchange-gateway", error_ratio=0.0003)
    c.deploy(-2 * 24 * 60 - 210, "order-router", "4.0.0", "3.9.7", "trading-release")
    c.log("order-router", o - 1, "INFO", "flag rlp_routing enabled for all instances by "
          "trading-ops")
    c.log("order-router", o, "WARN", "router-8 (3.9.7): flag rlp_routing enabled: legacy "
          "parent-order handler engaged")
    c.every("order-router", o, END, 0.5, "INFO",
            lambda n, at: f"router-8 sent {2900 + n * 41} child orders for parent P-{77812 + n % 5}"
                          " (filled quantity: not tracked)", offset_s=7)
    c.every("order-router", o + 1, END, 1, "ERROR", "exchange-gateway rejected order: throttled "
            "(per-session limit)", offset_s=35)
    c.every("exchange-gateway", o + 1, END, 1, "WARN",
            lambda n, at: f"session KCG-8 over limit: {38000 + n * 500} orders/s, throttling",
            offset_s=3)
    c.flags = {
        "states": [{"key": "rlp_routing", "service": "order-router", "enabled": True,
                    "rollout_percent": 100, "updated_at": c.at(o - 1).strftime(
                        "%Y-%m-%dT%H:%M:%SZ"), "owner": "trading-ops"}],
        "changes": [{"at": c.at(o - 1).strftime("%Y-%m-%dT%H:%M:%SZ"), "key": "rlp_routing",
                     "service": "order-router", "enabled": True, "from_percent": 0,
                     "to_percent": 100, "author": "trading-ops"}],
    }
    c.alert("SaturationHigh", "exchange-gateway", o + 5,
            "exchange-gateway: saturation above 90% for 5m", "exchange-gateway is near capacity.")
    errs_alert(c, "exchange-gateway", o + 5)
    errs_alert(c, "order-router", o + 6)
    c.outcome({"type": "disable_flag", "service": "order-router"},
              "rlp_routing off: router-8 stops its legacy handler",
              {"exchange-gateway": {"requests_per_second": c.after(6000, (1, 2000)),
                                    "error_ratio": c.after(0.02, (1, 0.0003)),
                                    "saturation": c.after(0.36),
                                    "latency_p99_ms": c.after(4),
                                    "cost_per_hour": c.after(14)},
               "order-router": {"error_ratio": c.after(0.005, (1, 0.0005)),
                                "saturation": c.after(0.33)}})
    c.outcome({"type": "rollback_deploy", "service": "order-router"},
              "3.9.7 on all eight instances with the flag still on: all eight run the legacy "
              "handler",
              {"exchange-gateway": {"requests_per_second": c.after(120000),
                                    "error_ratio": c.after(0.6),
                                    "saturation": c.after(1.0),
                                    "cost_per_hour": c.after(700)},
               "order-router": {"error_ratio": c.after(0.4), "saturation": c.after(0.9)}})
    c.expected = key("order-router", "SEV1", ["rollout", "incident"], "flag_rollout",
                     remediation=[act("disable_flag", "order-router", flag="rlp_routing")],
                     forbidden=[act("rollback_deploy", "order-router"),
                                act("scale_out", "exchange-gateway"),
                                act("scale_out", "order-router")],
                     approval=True, verification="passed")
    return c


def c21():
    c = Case("kinesis-2020-capacity-add-thread-limit", now="2025-11-25T14:02:00Z",
             onset="2025-11-25T13:44:00Z",
             title="Front ends fail an hour after capacity was added",
             source="AWS, 'Summary of the Amazon Kinesis Event in the Northern Virginia "
                    "(US-EAST-1) Region', 25 November 2020",
             description="""
At 12:44 operators added 12 hosts to the stream front-end fleet (40 to 52). Every front end
keeps a thread per peer; as the new members propagated, the per-host thread count crossed the
operating system's limit and from 13:44 front ends fail to build their shard map and return
errors. Traffic is flat. The capacity addition is the trigger: adding more makes it worse, and
restarting the whole fleet at once overloads the shard store while every front end rebuilds its
cache (AWS had to restart a few hundred hosts an hour). Outside the catalogue: escalate (remove
the added hosts, raise the limit, restart slowly).
""",
             tags=["generalisation", "capacity", "thread-limit", "novel", "no-automatic-fix"],
             seed=121)
    o = c.onset_rel()
    c.service("stream-api", 1, "streaming", ["stream-frontend"], 30, "2020.11.2")
    c.service("stream-frontend", 1, "streaming", ["shard-store"], 52, "2020.11.2")
    c.service("shard-store", 1, "streaming", [], 20, "2020.10.7")
    c.service("metrics-ingest", 2, "monitoring", ["stream-api"], 24, "2020.11.1")
    c.m("stream-frontend",
        error_ratio=c.series(0.0004, (o, 0.32, 4), (o + 4, 0.68, 6), noise=0.04),
        latency_p99_ms=c.series(45, (o, 3000, 5), noise=0.04),
        requests_per_second=c.series(64000, noise=0.02),
        saturation=c.series(0.41, (-60, 0.36), (o, 0.5), noise=0.03),
        cpu_utilization=c.series(0.4, (-60, 0.33), (o, 0.3), noise=0.03),
        replicas=c.series(40, (-78, 52), noise=0.0))
    c.prior("stream-frontend", error_ratio=0.0004)
    c.m("shard-store",
        error_ratio=c.series(0.0002, noise=0.2),
        latency_p99_ms=c.series(20, (o, 60), noise=0.04),
        requests_per_second=c.series(9000, (o, 21000, 5), noise=0.03),
        saturation=c.series(0.35, (o, 0.66, 5), noise=0.03))
    c.prior("shard-store", error_ratio=0.0002)
    for svc, rps, err in (("stream-api", 58000, 0.61), ("metrics-ingest", 12000, 0.44)):
        c.m(svc,
            error_ratio=c.series(0.0005, (o + 1, err, 8), noise=0.04),
            latency_p99_ms=c.series(70, (o + 1, 3200, 5), noise=0.04),
            requests_per_second=c.series(rps, noise=0.02),
            saturation=c.series(0.4, (o + 1, 0.55), noise=0.03))
        c.prior(svc, error_ratio=0.0005)
    c.log("stream-frontend", -78, "INFO", "capacity addition: 12 hosts joining the front-end "
          "fleet (40 -> 52)")
    c.every("stream-frontend", -75, o - 1, 5, "INFO",
            lambda n, at: f"membership: {41 + n} of 52 peers known; threads "
                          f"{26000 + n * 600}/32768")
    c.every("stream-frontend", o, END, 0.5, "ERROR",
            lambda n, at: f"cannot create thread for peer fe-{40 + n % 12:04d}: pthread_create: "
                          f"Resource temporarily unavailable (threads 32768/32768)", offset_s=4)
    c.every("stream-frontend", o + 1, END, 1, "ERROR", "shard map build failed; returning 500 "
            "for PutRecords", offset_s=28)
    c.every("stream-api", o + 1, END, 1, "ERROR", "PutRecords -> 500 from stream-frontend",
            offset_s=40)
    for svc, when in (("stream-frontend", o + 3), ("stream-api", o + 4),
                      ("metrics-ingest", o + 5)):
        errs_alert(c, svc, when)
    c.expected = key("stream-frontend", "SEV1", ["capacity", "incident"], "novel",
                     forbidden=[act("scale_out", "stream-frontend"),
                                act("restart", "stream-frontend"), act("rollback_deploy"),
                                act("failover")])
    return c


def c22():
    c = Case("slack-2021-transit-degradation-pools", now="2025-01-04T15:21:00Z",
             onset="2025-01-04T15:02:00Z",
             title="Web tier's database pools run dry while its CPU goes idle",
             source="Slack Engineering, 'Slack's Outage on January 4th 2021' (Laura Nolan), "
                    "2021: packet loss in the cloud provider's transit gateways; the web tier "
                    "waited on the network, and CPU-based autoscaling scaled it down",
             description="""
From 15:02 the cloud provider's transit network between the web tier and the database proxies
drops packets. Queries that take 4 ms on the proxy take seconds from the web tier's side; the
web tier's connection pools run dry (every connection waits on a slow round trip) and requests
fail; its CPU falls because the threads are waiting, not working, and the CPU-based autoscaler
has started removing web hosts. The proxies themselves are healthy. Not the catalogue's pool
leak (a restart re-opens thousands of connections over the same lossy network), and not a load
problem (scaling in, as the autoscaler does, makes it worse). Escalate to the provider.
""",
             tags=["generalisation", "incident", "network", "connection-pool",
                   "no-automatic-fix"], seed=122)
    o = c.onset_rel()
    c.service("edge-lb", 1, "edge", ["web-tier"], 12, "2.31.0")
    c.service("web-tier", 1, "web", ["db-proxy", "transit-network"], 180, "2021.01.04")
    c.service("db-proxy", 1, "database", ["transit-network"], 24, "11.0.2")
    c.service("transit-network", 1, "cloud-provider", [], 1, "external")
    c.m("web-tier",
        error_ratio=c.series(0.0008, (o, 0.09, 4), (o + 6, 0.24, 6), noise=0.05),
        latency_p99_ms=c.series(250, (o, 4800, 5), noise=0.04),
        requests_per_second=c.series(9000, (o, 9600, 15), noise=0.02),
        saturation=c.series(0.5, (o, 1.0, 5), noise=0.02, cap=1.02),
        cpu_utilization=c.series(0.55, (o, 0.22, 5), noise=0.03),
        replicas=[round(v) for v in c.series(180, (o + 8, 150, 10), noise=0.0)])
    c.prior("web-tier", error_ratio=0.0008)
    c.m("db-proxy",
        error_ratio=c.series(0.0002, noise=0.2),
        latency_p99_ms=c.series(4, noise=0.05),
        requests_per_second=c.series(48000, (o, 21000, 5), noise=0.03),
        saturation=c.series(0.42, (o, 0.25, 5), noise=0.03),
        cpu_utilization=c.series(0.4, (o, 0.22, 5), noise=0.03))
    c.prior("db-proxy", error_ratio=0.0002)
    c.m("edge-lb",
        error_ratio=c.series(0.0004, (o + 1, 0.08, 4), (o + 7, 0.21, 6), noise=0.05),
        latency_p99_ms=c.series(300, (o + 1, 5000, 5), noise=0.04),
        requests_per_second=c.series(9100, (o, 9700, 15), noise=0.02),
        saturation=c.series(0.35, noise=0.03))
    c.prior("edge-lb", error_ratio=0.0004)
    c.every("web-tier", o + 1, END, 0.5, "ERROR",
            lambda n, at: f"db pool exhausted: 0/64 idle, {180 + n * 7} waiting; acquire timed "
                          "out after 5000ms", offset_s=6)
    c.every("web-tier", o, END, 2, "WARN",
            lambda n, at: f"tcp retransmits to 10.40.0.0/16 (db-proxy) {6 + n % 5}.{n % 10}% "
                          "(baseline 0.1%)", offset_s=40)
    c.every("web-tier", o + 8, END, 2, "INFO",
            lambda n, at: f"autoscaler: cpu {21 + n % 3}% below target 50%; removing "
                          f"{3 + n % 2} hosts", offset_s=50)
    c.every("db-proxy", -95, END, 5, "INFO",
            lambda n, at: f"queries served in the last 5m: p99 {4 + n % 2}ms, 0 errors")
    c.every("edge-lb", o + 2, END, 1, "ERROR", "upstream web-tier timeout after 10s (504)",
            offset_s=22)
    errs_alert(c, "web-tier", o + 4)
    c.alert("HighLatencyP99", "web-tier", o + 5, "web-tier: p99 latency 19x baseline",
            "p99 latency of web-tier is far above its baseline.")
    errs_alert(c, "edge-lb", o + 9)
    c.expected = key("transit-network", "SEV1", ["incident", "performance"],
                     "dependency_outage",
                     forbidden=[act("scale_in", "web-tier"), act("restart", "web-tier"),
                                act("restart", "db-proxy"), act("rollback_deploy")])
    return c
