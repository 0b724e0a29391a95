"""`opsloop serve` (the HTTP API), `opsloop sim-serve` (the simulator as a Prometheus target)
and `opsloop prometheus-rules` (alerts.yaml as Prometheus alerting rules)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from opsloop.cli.render import Ui, UserError
from opsloop.settings import Settings


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    run = sub.add_parser("run", parents=[common],
                         help="the long-running opsloop: API and webhook intake, SLO burn "
                              "rates, detectors, scheduled agents and reviews")
    _serving_options(run)
    run.add_argument("--scenario", default="traffic_surge",
                     help="with no --environment: the simulation run starts and works on "
                          "(default traffic_surge)")
    run.add_argument("--sim-port", type=int, default=9100,
                     help="with no --environment: the simulator's loopback port (fixed, so "
                          "a restarted run reaches the incidents it left)")
    run.add_argument("--minute-seconds", type=float, default=60.0,
                     help="with no --environment: wall seconds per simulated minute "
                          "(default 60: real time; 0.5 runs a week in under 90 minutes)")
    run.set_defaults(handler=run_command)

    p = sub.add_parser("serve", parents=[common],
                       help="serve the API: Alertmanager webhook, incidents, approvals "
                            "(`opsloop run` without the default simulator)")
    _serving_options(p)
    p.set_defaults(handler=serve)
    register_tools(sub, common)


def _serving_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default=None, help="bind address (env OPSLOOP_SERVE_HOST, "
                                                "default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (env OPSLOOP_SERVE_PORT, "
                                                          "default 8080)")
    p.add_argument("--environment", default=None, metavar="REF",
                   help="production incidents run against, e.g. remote:sim=http://127.0.0.1:9100"
                        ",prometheus=http://127.0.0.1:9090 (env OPSLOOP_SERVE_ENVIRONMENT; "
                        "none: incidents are recorded, not run)")
    p.add_argument("--workers", type=int, default=None, help="incidents run side by side")
    p.add_argument("--flag-file", type=Path, default=None, metavar="PATH",
                   help="a team's flagd flag file: the flags the agents read, and where "
                        "disable_flag / set_flag_rollout write (validated, atomic, with "
                        "history; a git commit when its folder is a git work tree); metrics "
                        "still come from the environment")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="another host name clients use to reach this server (the Host header); "
                        "repeatable. Loopback names and the bind address are always allowed; "
                        "a wildcard bind without any allows every name")


def register_tools(sub: Any, common: argparse.ArgumentParser) -> None:
    s = sub.add_parser("sim-serve", parents=[common],
                       help="serve a simulated production over HTTP (Prometheus /metrics, "
                            "JSON API, actions, faults)")
    s.add_argument("--scenario", default="bad_deploy", help="scenario whose fleet and fault "
                                                            "to simulate (`opsloop scenarios`)")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9100)
    s.add_argument("--minute-seconds", type=float, default=60.0,
                   help="wall seconds per simulated minute; 0 = manual clock "
                        "(POST /api/advance). Default 60: real time")
    s.add_argument("--hold-fault", action="store_true",
                   help="hold the scenario's fault until POST /api/faults/scenario")
    s.add_argument("--flag-file", type=Path, default=None, metavar="PATH",
                   help="a flagd flag file the simulated flags follow (state and percent), "
                        "as flagd's file watcher would")
    s.set_defaults(handler=sim_serve)

    r = sub.add_parser("prometheus-rules", parents=[common],
                       help="print alerts.yaml as a Prometheus alerting rule file")
    r.add_argument("--minute-seconds", type=float, default=60.0,
                   help="wall seconds per minute of the metrics' clock (a fast simulator)")
    r.add_argument("--output", type=Path, default=None, help="write here instead of stdout")
    r.set_defaults(handler=prometheus_rules)


def serve(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    import uvicorn

    from opsloop.api.access import answering_names
    from opsloop.api.auth import TokenConfigError, serving_tokens, token_entries
    from opsloop.api.runtime import IntakeRuntime
    from opsloop.api.server import (
        UNAUTHENTICATED_BANNER,
        BindFailed,
        BindRefused,
        check_bind,
        host_port,
        listen,
    )
    from opsloop.policy import load_policies
    from opsloop.web.app import ConsoleConfigError, console_url, create_console_app

    updates = {k: v for k, v in {"serve_host": args.host, "serve_port": args.port,
                                 "serve_environment": args.environment,
                                 "serve_workers": args.workers}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    if getattr(args, "flag_file", None) is not None:
        settings = settings.model_copy(update={"serve_environment": _with_flags(
            settings.serve_environment, args.flag_file)})
    host = settings.serve_host
    try:
        check_bind(host, authenticated=bool(token_entries(settings)))
        # Bound before anything is announced: a busy port is one line, not a banner and a
        # failure after it.
        sock = listen(host, settings.serve_port)
    except (TokenConfigError, BindRefused, BindFailed) as exc:
        raise UserError(str(exc)) from None
    local = None
    try:
        policies = load_policies(settings.policies_dir,
                                 allow_unsafe=settings.allow_unsafe_policies)
        # An enabled notification backend whose secret is unset stops the start, not the
        # first incident (the runtime builds its loop lazily).
        policies.notifications.plan(policies_dir=settings.policies_dir)
        runtime = IntakeRuntime(settings, policies, settings.serve_environment,
                                evaluate_rules=getattr(args, "evaluate_rules", False))
        unknown = runtime.unknown_agents()
        if unknown:
            runtime.close_unstarted()
            raise UserError("\n".join(unknown))
        tokens, local = serving_tokens(settings)
        where = f"http://{host_port(host, sock.getsockname()[1])}"
        if local is not None:
            ui.err.print(UNAUTHENTICATED_BANNER.format(where=where), style="bold red",
                         markup=False)
            ui.err.print(f"local approver token (decisions by {local.principal.name}): "
                         f"{local.token}  — also in {local.path} (mode 0600)", markup=False)
        ui.err.print(
            f"{getattr(args, 'banner', 'opsloop serve')} on {where} · auth: "
            f"{f'{len(tokens)} token(s)' if local is None else 'local approver token only'} · "
            f"environment: "
            f"{settings.serve_environment or 'none (incidents recorded, not run)'} · "
            f"webhook: {where}/api/v1/alerts/alertmanager · OpenAPI: {where}/docs",
            markup=False,
        )
        try:
            app = create_console_app(runtime, tokens, answering_names(host, args.allow_host))
        except ConsoleConfigError as exc:
            runtime.close_unstarted()
            raise UserError(str(exc)) from None
        ui.err.print(f"console: {console_url(host, sock.getsockname()[1])} (sign in with "
                     "an API token" + (", the local one above" if local else "") + ")",
                     markup=False)
        runtime.start()
        try:
            with _quiet_stop_signals():
                uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(
                    sockets=[sock])
        finally:
            runtime.stop()  # running work checkpointed; scheduled runs recorded
    finally:
        sock.close()
        if local is not None:
            local.discard()
    return 0


def _with_flags(environment: str | None, flag_file: Path) -> str:
    """The environment reference with its flags from `flag_file`, checked now: a missing or
    invalid file stops the start with what is wrong and where."""
    from opsloop.environments import UnknownEnvironment, check_flag_file, with_flag_file

    if not environment:
        raise UserError("--flag-file needs an environment to run against (--environment "
                        "remote:sim=<url>,...); `opsloop run` provides its own")
    try:
        return with_flag_file(environment, check_flag_file(flag_file))
    except UnknownEnvironment as exc:
        raise UserError(str(exc)) from None


def _follow_flags(env: Any, flag_file: Path | None) -> Path | None:
    """Point a simulation at the flag file (checked first), and bring its flags in line."""
    if flag_file is None:
        return None
    from opsloop.environments import UnknownEnvironment, check_flag_file

    try:
        env.flag_file = check_flag_file(flag_file)
    except UnknownEnvironment as exc:
        raise UserError(str(exc)) from None
    env.follow_flag_file()
    return Path(env.flag_file)


SIM_SAVE_SECONDS = 10.0  # `run`'s own simulation is saved this often (and when it stops)


@contextlib.contextmanager
def _quiet_stop_signals() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGTERM/SIGINT and then raises the signal again with
    the handlers it found: with the defaults that kills the process before the runtime has
    stopped. Handlers that do nothing let the shutdown finish and `serve` return 0."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: None)
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_command(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    """`opsloop run`: `serve` plus, with no environment configured, a simulated production
    started in this process, so a fresh clone runs the whole loop with no setup."""
    from opsloop.api.server import is_loopback
    from opsloop.environments import remote_ref
    from opsloop.simulator import SimEnvironment, UnknownScenarioError
    from opsloop.simulator.server import SimServer

    args.banner = "opsloop run"
    if args.environment or settings.serve_environment:
        return serve(args, settings, ui)
    if args.minute_seconds <= 0:
        raise UserError("--minute-seconds must be positive: `opsloop run` keeps time moving")
    saved = settings.state_dir / "run-simulation.json"
    try:
        if saved.is_file():  # a restart continues the same production, its clock included
            env = SimEnvironment.load(saved)
        else:
            env = SimEnvironment.create(args.scenario, settings.seed)
    except UnknownScenarioError as exc:
        raise UserError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{saved}: cannot read the simulation `opsloop run` saved: {exc}; "
                        f"move it aside to start a new one") from None
    # The simulated flags follow the team's file, so what the agents write there is what
    # the simulated services serve (and verification sees its effect).
    _follow_flags(env, args.flag_file)
    host = "127.0.0.1"
    assert is_loopback(host)
    try:
        server = SimServer(env, host=host, port=args.sim_port,
                           minute_seconds=args.minute_seconds)
    except OSError as exc:
        raise UserError(f"cannot start the simulator on {host}:{args.sim_port}: "
                        f"{exc.strerror}; pass --sim-port, or --environment") from None
    server.start()
    ui.err.print(f"simulated production at {server.url} ({args.minute_seconds:g}s per minute"
                 f"{', continued from ' + str(saved) if saved.is_file() else ''})", markup=False)
    stop = threading.Event()

    def keep() -> None:
        with server.lock:
            env.save(saved)

    def keep_every() -> None:
        while not stop.wait(SIM_SAVE_SECONDS):
            keep()

    saver = threading.Thread(target=keep_every, name="sim-save", daemon=True)
    saver.start()
    try:
        args.environment = remote_ref(server.url)
        args.evaluate_rules = True  # no Prometheus in front of this simulator
        return serve(args, settings, ui)
    finally:
        stop.set()
        server.stop()
        keep()


def sim_serve(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.api.server import is_loopback
    from opsloop.simulator import SimEnvironment
    from opsloop.simulator.server import SimServer

    if not is_loopback(args.host):
        raise UserError(f"--host {args.host}: the simulator API takes actions without "
                        "authentication, so it binds to loopback only")
    if args.minute_seconds < 0:
        raise UserError("--minute-seconds must be 0 (manual clock) or positive")
    env = SimEnvironment.create(args.scenario, settings.seed if args.seed is None else args.seed)
    _follow_flags(env, args.flag_file)
    try:
        server = SimServer(env, host=args.host, port=args.port,
                           minute_seconds=args.minute_seconds, hold_scenario=args.hold_fault)
    except OSError as exc:
        raise UserError(f"cannot bind {args.host}:{args.port}: {exc.strerror}") from None
    server.start()
    ui.err.print(f"simulating {args.scenario} at {server.url} ({server.mode} clock"
                 f"{f', {args.minute_seconds:g}s per minute' if args.minute_seconds else ''}"
                 f"{', fault held' if args.hold_fault else ''}"
                 f"{f', flags from {env.flag_file}' if env.flag_file else ''}) · metrics: "
                 f"{server.url}/metrics · flags: {server.url}/flags.json",
                 markup=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.stop()
    return 0


def prometheus_rules(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from opsloop.policy import load_policies
    from opsloop.prometheus_rules import alerting_rules
    from opsloop.tools.promql import load_promql

    if args.minute_seconds <= 0:
        raise UserError("--minute-seconds must be positive")
    policies = load_policies(settings.policies_dir, allow_unsafe=settings.allow_unsafe_policies)
    rules = alerting_rules(policies.alerts.rules, load_promql(settings.promql_path),
                           args.minute_seconds, labels={"env": "prod"})
    text = yaml.safe_dump(rules, sort_keys=False, width=1000)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
        ui.err.print(f"wrote {len(rules['groups'][0]['rules'])} rules to {args.output}",
                     markup=False)
    else:
        print(text, end="")
    return 0
