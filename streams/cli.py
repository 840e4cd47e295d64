"""The ``beckon`` command: parses arguments, builds Settings once, calls the library.

Every setting is a ``BECKON_`` variable for every sub-command; a sub-command also offers
as ``--flags`` the settings of the groups it reads (:data:`COMMANDS`), so its ``--help``
lists what matters to it. A flag wins over the variable.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, get_args

from pydantic import SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas.errors import BeckonError, ConfigError
from streams.kafka import topics
from streams.ops import broker
from streams.settings import (
    BROKER,
    COLLECTOR,
    CONNECTION,
    CONSOLE,
    DASHBOARD,
    DELIVERY,
    ENGINE,
    GROUPS,
    TOPICS,
    WORKER,
    Group,
    Settings,
    group_of,
    load_settings,
)

if TYPE_CHECKING:
    from schemas.rules import RuleSet

log = logging.getLogger("beckon")

Handler = Callable[[argparse.Namespace, Settings], int]


@dataclass(frozen=True)
class Uses:
    """The settings a command offers as flags: the groups it reads, plus single settings it
    reads from a group it otherwise has no use for (the dashboard shows the lag of the
    worker's group, ``app_id``). tests/unit/test_cli.py holds each command's code to it."""

    groups: tuple[Group, ...]
    also: tuple[str, ...] = ()

    def fields(self) -> list[str]:
        """The settings offered, in the order Settings declares them."""
        return [n for n in Settings.model_fields if group_of(n) in self.groups or n in self.also]


# Each command's settings, by its words after `beckon`; docs/operations.md has it as a table.
COMMANDS: Final[dict[str, Uses]] = {
    "up": Uses(GROUPS),  # its services get every setting, through the environment
    "broker start": Uses((CONNECTION, TOPICS, BROKER)),  # it creates the topics too
    "broker stop": Uses((BROKER,)),
    "broker status": Uses((BROKER,)),
    "broker install": Uses((BROKER,)),
    "topics create": Uses((CONNECTION, TOPICS)),
    "rules validate": Uses(()),  # a file, nothing else
    "rules apply": Uses((CONNECTION, TOPICS)),
    "replay": Uses((CONNECTION, TOPICS)),
    "backtest": Uses((ENGINE,)),  # offline: it reads no Kafka
    # data_dir defaults to a folder under home
    "worker": Uses((CONNECTION, TOPICS, ENGINE, WORKER), also=("home",)),
    # events larger than the worker takes are refused at the door
    "collector": Uses((CONNECTION, TOPICS, COLLECTOR), also=("max_event_bytes",)),
    # the demo pages post to the collector's address unless delivery_collector_url is set
    "delivery": Uses((CONNECTION, TOPICS, DELIVERY), also=("collector_host", "collector_port")),
    "dashboard": Uses((CONNECTION, TOPICS, DASHBOARD), also=("app_id",)),
    # the dashboard too, and previews with the engine's settings
    "console": Uses((CONNECTION, TOPICS, ENGINE, DASHBOARD, CONSOLE), also=("app_id",)),
    "console-user": Uses(()),  # a users-file line, nothing else
}


def _settings_parser(uses: Uses) -> argparse.ArgumentParser:
    """A parent parser with a --flag per setting the command uses, under its group's title
    (the values are checked by Settings, as the environment's are)."""
    parser = argparse.ArgumentParser(add_help=False)
    offered = uses.fields()
    for group in GROUPS:
        names = [name for name in offered if group_of(name) == group]
        if not names:
            continue
        title = f"{group.name} settings (each also a BECKON_<NAME> variable)"
        section = parser.add_argument_group(title, group.about)
        for name in names:
            section.add_argument(
                "--" + name.replace("_", "-"),
                dest=f"setting_{name}",
                metavar="VALUE",
                help=_flag_help(Settings.model_fields[name]),
            )
    return parser


def _flag_help(info: FieldInfo) -> str:
    """The description and the default in brackets. A secret's default is never shown, and
    neither is an empty one (the description says what it means)."""
    text = info.description or ""
    if not _is_secret(info) and info.default not in (None, "", PydanticUndefined):
        text += f" [{info.default}]"
    return text.replace("%", "%%")  # argparse formats help with %


def _is_secret(info: FieldInfo) -> bool:
    kinds = (info.annotation, *get_args(info.annotation))
    return SecretStr in kinds or isinstance(info.default, SecretStr)


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return load_settings(**overrides)


# --- broker and topics --------------------------------------------------------------------


def cmd_broker_start(args: argparse.Namespace, settings: Settings) -> int:
    began = time.monotonic()
    state = broker.start(settings)
    created = topics.ensure_topics(settings.model_copy(update={"bootstrap": state.bootstrap}))
    print(f"broker {state} [{time.monotonic() - began:.1f} s]")
    if created:
        print(f"created topics: {', '.join(created)}")
    return 0


def cmd_broker_stop(args: argparse.Namespace, settings: Settings) -> int:
    print("broker stopped" if broker.stop(settings) else "broker was not running")
    return 0


def cmd_broker_status(args: argparse.Namespace, settings: Settings) -> int:
    state = broker.status(settings)
    print(f"broker {state}")
    return 0 if state.running else 1


def cmd_broker_install(args: argparse.Namespace, settings: Settings) -> int:
    print(f"Kafka {settings.kafka_version} jars in {broker.install(settings)}")
    return 0


def cmd_topics_create(args: argparse.Namespace, settings: Settings) -> int:
    created = topics.ensure_topics(settings)
    print(f"created: {', '.join(created)}" if created else "all topics exist")
    return 0


# --- rules and backtest ---------------------------------------------------------------


def cmd_rules_validate(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.rules import load_rules_file

    ruleset = load_rules_file(args.file)
    enabled = sum(rule.enabled for rule in ruleset)
    print(f"{args.file}: {len(ruleset)} rules ({enabled} enabled), version {ruleset.version}")
    _print_budgets(ruleset)
    return 0


def _print_budgets(ruleset: RuleSet) -> None:
    """A line per queue with a budget: it holds back invitations of every rule it serves,
    so whoever validates or applies a file should see it beside the rule count."""
    budgets = {name: q.budget for name, q in ruleset.queues.items() if q.budget is not None}
    for name, budget in budgets.items():
        print(f"queue {name}: at most {budget.invitations} invitations per {budget.per}")


def cmd_rules_apply(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.rules import load_rules_file
    from streams.kafka.rules_topic import publish_rules, system_user

    ruleset = load_rules_file(args.file)  # an invalid file stops here: nothing is published
    if args.if_empty:
        from streams.kafka.rules_topic import read_rules

        if len(held := read_rules(settings).ruleset):
            print(f"{settings.topic_rules} holds {len(held)} rules: left as they are")
            return 0
    published, deleted, _ = publish_rules(
        settings, ruleset, author=args.author or system_user(), comment=args.comment,
        action="apply",
    )  # fmt: skip
    print(f"published: {', '.join(published) or '-'}")
    print(f"deleted: {', '.join(deleted) or '-'}")
    print(f"{settings.topic_rules}: {len(ruleset)} rules, version {ruleset.version}")
    _print_budgets(ruleset)
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.replay import replay

    stats = replay(settings, args.events, rate=args.rate)
    print(
        f"sent {stats.sent} events to {settings.topic_clickstream} "
        f"({stats.unkeyed} without a visitor key) in {stats.elapsed_s:.1f} s, "
        f"{stats.events_per_s:,.0f} events/s"
    )
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    import orjson

    from schemas.rules import load_rules_file
    from streams.backtest import backtest_file, default_processes, summary
    from streams.core.rules import CompiledRules

    rules = CompiledRules.of(load_rules_file(args.rules))
    for flag, name in (("--events", args.events), ("--capacity", args.capacity)):
        if name is not None and not Path(name).is_file():
            raise ConfigError(f"{flag}: no such file: {name}")
    capacity = Path(args.capacity) if args.capacity else None
    events = Path(args.events)
    processes = args.processes or default_processes(events)
    result = backtest_file(
        events, rules, settings.limits(), show_progress=True, capacity=capacity,
        processes=processes,
    )  # fmt: skip
    _write_lines(args.out, result.invitations, orjson.dumps)
    if args.decisions:
        _write_lines(args.decisions, result.decisions, orjson.dumps)
    print(summary(result, rules), file=sys.stderr)
    return 0


def _write_lines(target: str | None, records: list[Any], dumps: Callable[[Any], bytes]) -> None:
    """JSON lines to a file, or to standard output without one."""
    data = b"".join(dumps(record) + b"\n" for record in records)
    if target is None or target == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        Path(target).write_bytes(data)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from streams.worker.allocator import reexec

    # First, before any thread starts or Faust is imported: this may start the process
    # again, and whatever was loaded before it is loaded twice.
    print(f"memory allocator: {reexec(settings.worker_allocator)}", file=sys.stderr)
    from schemas.rules import load_rules_file
    from streams.core.rules import CompiledRules
    from streams.kafka.capacity_topic import CapacityInForce
    from streams.kafka.rules_topic import RulesInForce, read_rules
    from streams.worker.pipeline import run_worker

    topics.ensure_topics(settings)
    rules: Callable[[], CompiledRules]
    if args.rules is not None:
        fixed = CompiledRules.of(load_rules_file(args.rules))
        rules = lambda: fixed  # noqa: E731
    else:
        rules = RulesInForce(settings, read_rules(settings))
        print(f"rules from {settings.topic_rules}: version {rules().version}", file=sys.stderr)
    capacity = CapacityInForce.read(settings)
    print(f"capacity from {settings.topic_capacity}: {capacity.view!r}", file=sys.stderr)
    run_worker(settings, rules, loglevel="debug" if args.verbose else "info", capacity=capacity)
    return 0


def cmd_collector(args: argparse.Namespace, settings: Settings) -> int:
    from streams.collector.server import run_collector

    topics.ensure_topics(settings)
    run_collector(settings)
    return 0


def cmd_delivery(args: argparse.Namespace, settings: Settings) -> int:
    from streams.delivery.server import run_delivery

    topics.ensure_topics(settings)
    run_delivery(settings)
    return 0


def cmd_dashboard(args: argparse.Namespace, settings: Settings) -> int:
    from streams.dashboard.server import run_dashboard

    topics.ensure_topics(settings)
    run_dashboard(settings)
    return 0


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    from streams.console.server import run_console

    topics.ensure_topics(settings)
    run_console(settings)
    return 0


def cmd_console_user(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from streams.console.auth import ROLES, hash_password

    if args.role not in ROLES:
        raise ConfigError(f"role must be one of {', '.join(ROLES)}, got {args.role!r}")
    if ":" in args.name or not args.name.strip():
        raise ConfigError(f"a user name must be non-empty and hold no ':', got {args.name!r}")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            raise ConfigError("the two passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        raise ConfigError("a password needs at least 8 characters")
    print(f"{args.name}:{args.role}:{hash_password(password)}")
    return 0


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from streams.ops.up import run_up

    return run_up(settings)


# --- the parser ---------------------------------------------------------------------------


def _version() -> str:
    """The installed distribution's version: pyproject's, wherever the code was run from."""
    try:
        return version("beckon")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="beckon", description="Beckon: proactive chat invitations from clickstreams."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=f"beckon {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(parent: argparse._SubParsersAction[argparse.ArgumentParser], command: str,
            handler: Handler, help: str) -> argparse.ArgumentParser:  # fmt: skip
        """The sub-command ``beckon COMMAND``, with the flags of the settings it uses."""
        common = _settings_parser(COMMANDS[command])
        name = command.split()[-1]
        p = parent.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    add(sub, "up", cmd_up, "run everything locally until Ctrl-C")

    broker_p = sub.add_parser("broker", help="a local single-node Kafka (KRaft)")
    broker_sub = broker_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add(broker_sub, "broker start", cmd_broker_start, "start it; returns once it accepts clients")
    add(broker_sub, "broker stop", cmd_broker_stop, "stop it cleanly")
    add(broker_sub, "broker status", cmd_broker_status, "exit 0 if it runs, 1 if not")
    add(broker_sub, "broker install", cmd_broker_install, "fetch Kafka's jars from Maven Central")

    rules_p = sub.add_parser("rules", help="targeting rules files")
    rules_sub = rules_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add(rules_sub, "rules validate", cmd_rules_validate, "check a rules file").add_argument("file")
    apply_help = "publish a rules file to the rules topic: the whole set in force"
    apply_p = add(rules_sub, "rules apply", cmd_rules_apply, apply_help)
    apply_p.add_argument("file")
    apply_p.add_argument(
        "--if-empty", action="store_true",
        help="only when the rules topic holds no rules (a first start's sample)",
    )  # fmt: skip
    apply_p.add_argument("--author", help="who publishes, for the history [the system user]")
    apply_p.add_argument("--comment", default="", help="why, for the history")

    rp = add(sub, "replay", cmd_replay, "publish recorded events to the clickstream topic")
    rp.add_argument("events", help="events, JSON lines, sent in file order")
    rp.add_argument(
        "--rate",
        type=_positive,
        metavar="N",
        help="pace by the events' ts, N times as fast as recorded [as fast as possible]",
    )

    worker = add(sub, "worker", cmd_worker, "one stream worker (start more for more throughput)")
    worker.add_argument("--rules", help="a rules file to use instead of following the rules topic")
    add(sub, "collector", cmd_collector, "the HTTP collector: Beckon JSON, Snowplow, Segment")
    add(sub, "delivery", cmd_delivery, "the reference chat delivery service and a demo shop")
    add(sub, "dashboard", cmd_dashboard, "the live operations page, read from Kafka")
    add(
        sub, "console", cmd_console, "the rules console (and the dashboard) on the dashboard's port"
    )
    user_p = add(sub, "console-user", cmd_console_user,
                 "print a users-file line for the console (the password is asked for)")  # fmt: skip
    user_p.add_argument("name")
    user_p.add_argument("role", help="viewer or editor")

    bt = add(sub, "backtest", cmd_backtest, "run the engine offline over recorded events")
    bt.add_argument("--rules", required=True, help="rules file (YAML or JSON)")
    bt.add_argument("--events", required=True, help="events, JSON lines, any order")
    bt.add_argument("--out", help="invitations as JSON lines [standard output]")
    bt.add_argument("--decisions", help="every decision as JSON lines")
    bt.add_argument(
        "--capacity",
        help="capacity records, JSON lines, any order, as on the capacity topic "
        "[none: every queue's capacity is unknown]",
    )
    bt.add_argument(
        "--processes",
        type=_count,
        metavar="N",
        help="split the visitors across N processes (forked; the output is the same); "
        "1 runs in this process [2 where os.fork exists and the file holds about "
        "10,000 events or more, else 1]",
    )

    topics_p = sub.add_parser("topics", help="the contract's topics")
    topics_sub = topics_p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add(topics_sub, "topics create", cmd_topics_create, "create the topics that are missing")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The Kafka clients are chatty at INFO; their warnings still show.
    for noisy in ("kafka", "aiokafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = _settings_from(args)
        return int(args.handler(args, settings))
    except BeckonError as exc:
        print(f"beckon: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
