"""`beckon`'s flags: each command offers the settings it reads, by group; no broker needed.

The environment still sets any setting for any command; the flags are each command's own,
so `--help` lists what matters to it. Which settings a command's code reads is found two
ways: by reading the source of the functions the command's handler reaches (every command),
and by running code with settings that note what is read (the backtest, the demo shop).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import textwrap
from collections.abc import Callable
from functools import cache
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, TypeGuard

import pytest
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from streams import cli
from streams.cli import COMMANDS, build_parser, main
from streams.settings import GROUPS, Group, Settings, group_of

SETTINGS_FILE = Path(inspect.getfile(Settings))
FIELDS = frozenset(Settings.model_fields)


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _flags(help_text: str) -> set[str]:
    return set(re.findall(r"^\s+(?:-\w, )?(--[a-z0-9-]+)", help_text, re.M))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _commands(parser: argparse.ArgumentParser, words: str = "") -> dict[str, Any]:
    """Each leaf sub-command's parser, by its words after `beckon`."""
    found: dict[str, Any] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{words} {name}".strip()))
    return found or {words: parser}


def _handler(command: str) -> Callable[..., int]:
    handler: Callable[..., int] = _commands(build_parser())[command].get_default("handler")
    return handler


# --- help and parsing ----------------------------------------------------------------------


def test_topics_create_offers_topic_and_connection_flags_only(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = _help(capsys, "topics", "create")
    flags = _flags(text)
    assert {"--bootstrap", "--sasl-password", "--topic-clickstream", "--partitions"} <= flags
    assert "--grace-s" not in flags and "--presence-timeout-s" not in flags
    assert "connection settings (each also a BECKON_<NAME> variable)" in text
    assert "topics settings (each also a BECKON_<NAME> variable)" in text
    assert "worker settings" not in text and "engine settings" not in text


def test_worker_offers_its_own_and_the_engine_flags(capsys: pytest.CaptureFixture[str]) -> None:
    flags = _flags(_help(capsys, "worker"))
    assert {"--grace-s", "--batch-max", "--processing-guarantee", "--presence-timeout-s"} <= flags
    assert {"--bootstrap", "--topic-rules", "--home", "--rules"} <= flags
    assert "--collector-port" not in flags and "--broker-heap" not in flags


def test_backtest_and_rules_validate_offer_no_kafka_flags(
    capsys: pytest.CaptureFixture[str],
) -> None:
    backtest = _flags(_help(capsys, "backtest"))
    assert "--min-gap-s" in backtest and "--bootstrap" not in backtest
    assert _flags(_help(capsys, "rules", "validate")) == {"--help"}


def test_up_offers_every_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert {_flag(name) for name in FIELDS} <= _flags(_help(capsys, "up"))


def test_a_flag_of_another_group_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["topics", "create", "--grace-s", "1"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --grace-s 1" in capsys.readouterr().err


def test_a_flag_of_the_commands_group_reaches_the_settings() -> None:
    args = build_parser().parse_args(["worker", "--grace-s", "0.5", "--partitions", "3"])
    settings = cli._settings_from(args)
    assert (settings.grace_s, settings.partitions) == (0.5, 3)


def test_the_environment_sets_what_the_command_has_no_flag_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BECKON_GRACE_S", "0.7")
    monkeypatch.setenv("BECKON_PARTITIONS", "5")
    args = build_parser().parse_args(["topics", "create", "--partitions", "4"])
    settings = cli._settings_from(args)
    assert (settings.grace_s, settings.partitions) == (0.7, 4)  # the flag wins


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"beckon {version('beckon')}\n"


# --- secrets -------------------------------------------------------------------------------


def test_help_shows_defaults_but_never_a_secret() -> None:
    assert cli._flag_help(Settings.model_fields["partitions"]) == "partitions of new topics [8]"
    assert cli._flag_help(Settings.model_fields["sasl_password"]) == "SASL password (never logged)"
    masked = FieldInfo(default=SecretStr("hunter2"), description="key password")
    plain = FieldInfo(annotation=SecretStr, default="hunter2")  # a default not yet validated
    assert cli._flag_help(masked) == "key password"
    assert "hunter2" not in cli._flag_help(plain)


def test_a_secret_given_as_a_flag_is_not_printed_on_an_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in __import__("os").environ if k.startswith("BECKON_")]:
        monkeypatch.delenv(key)
    argv = ["up", "--security-protocol", "SASL_SSL", "--sasl-password", "hunter2-secret"]
    assert main(argv) == 2  # SASL without a mechanism: refused before anything runs
    out, err = capsys.readouterr()
    assert "BECKON_SASL_MECHANISM" in err
    assert "hunter2-secret" not in out + err


# --- groups --------------------------------------------------------------------------------


def test_every_setting_is_in_exactly_one_known_group() -> None:
    for name, info in Settings.model_fields.items():
        groups = [m for m in info.metadata if isinstance(m, Group)]
        assert len(groups) == 1, f"{name}: give it a group, e.g. Worker[int]"
        assert groups[0] in GROUPS, name
    assert {group_of(name) for name in FIELDS} == set(GROUPS)  # no group is empty


def test_every_command_is_declared_and_every_declaration_is_a_command() -> None:
    assert set(_commands(build_parser())) == set(COMMANDS)
    for uses in COMMANDS.values():
        assert set(uses.also) <= FIELDS
        assert not any(group_of(name) in uses.groups for name in uses.also)  # no repeats


# --- what each command's code reads --------------------------------------------------------


def _in_streams(obj: object) -> bool:
    """Code of Beckon's own that may read settings (Settings' own methods are read below)."""
    module = getattr(obj, "__module__", None) or ""
    return module.startswith("streams.") and module != "streams.settings"


def _functions_of(obj: object) -> list[Callable[..., Any]]:
    """A function of streams, or every method of a class of streams: what naming it reaches."""
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        return [f for f in (obj.fget, obj.fset) if f is not None and _in_streams(f)]
    if inspect.isfunction(obj) and _in_streams(obj):
        return [inspect.unwrap(obj)]
    if inspect.isclass(obj) and _in_streams(obj):
        return [f for member in vars(obj).values() for f in _functions_of(member)]
    return []


@cache
def _tree(function: Callable[..., Any]) -> ast.AST:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError):  # generated code (a dataclass's __init__): no source
        return ast.Module(body=[], type_ignores=[])


def _scope(function: Callable[..., Any]) -> dict[str, Any]:
    """The names a function sees: its module's, and the streams modules it imports itself."""
    scope = dict(getattr(function, "__globals__", {}))
    for node in ast.walk(_tree(function)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("streams."):
            module = importlib.import_module(str(node.module))
            for alias in node.names:
                found = getattr(module, alias.name, None)
                if found is None:  # a submodule not imported yet
                    found = importlib.import_module(f"{node.module}.{alias.name}")
                scope[alias.asname or alias.name] = found
    return scope


def _resolve(node: ast.AST, scope: dict[str, Any]) -> object:
    """What a name or a dotted name (`topics.ensure_topics`) stands for, if it can be told."""
    if isinstance(node, ast.Name):
        return scope.get(node.id)
    if isinstance(node, ast.Attribute):
        base = _resolve(node.value, scope)
        if isinstance(base, ModuleType) or inspect.isclass(base):
            return getattr(base, node.attr, None)
    return None


def _reached(handler: Callable[..., Any]) -> set[Callable[..., Any]]:
    """The functions of streams a command's handler calls or names, and theirs in turn."""
    todo, seen = [handler], set()
    while todo:
        function = todo.pop()
        if function in seen:
            continue
        seen.add(function)
        scope = _scope(function)
        for node in ast.walk(_tree(function)):
            todo.extend(_functions_of(_resolve(node, scope)))
    return seen


def _method_or_property(node: ast.stmt) -> TypeGuard[ast.FunctionDef]:
    """Not a validator: those check the settings for every command, whatever it reads."""
    return isinstance(node, ast.FunctionDef) and all(
        isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list
    )


def _self_attributes(function: ast.FunctionDef) -> set[str]:
    return {
        node.attr
        for node in ast.walk(function)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }


@cache
def _method_reads() -> dict[str, frozenset[str]]:
    """The fields each Settings method or property reads (through the ones it calls)."""
    tree = ast.parse(SETTINGS_FILE.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    uses = {f.name: _self_attributes(f) for f in cls.body if _method_or_property(f)}
    reads = {name: set(attrs & FIELDS) for name, attrs in uses.items()}
    for _ in uses:  # to a fixed point: methods call methods
        for name, attrs in uses.items():
            for called in attrs & reads.keys():
                reads[name] |= reads[called]
    return {name: frozenset(fields) for name, fields in reads.items()}


def _settings_read_by(handler: Callable[..., Any]) -> set[str]:
    """The settings the handler's code reads: `x.field`, or `x.method` of Settings reading
    some. By name, so another object's attribute of that name counts too (the safe side),
    except an object's own (`self.x`): objects keep the settings as `self.settings`."""
    methods, read = _method_reads(), set()
    for function in _reached(handler):
        attrs = {
            node.attr
            for node in ast.walk(_tree(function))
            if isinstance(node, ast.Attribute)
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        }
        read |= (attrs & FIELDS).union(*(methods[m] for m in attrs & methods.keys()))
    return read


def test_the_source_scan_sees_what_the_settings_methods_read() -> None:
    assert _method_reads()["limits"] == {
        "session_timeout_s", "presence_timeout_s", "min_gap_s", "invitation_ttl_s",
        "dwell_window_s", "journey_ttl_days", "capacity_delay_s", "capacity_max_age_s",
        "capacity_unknown",
    }  # fmt: skip
    assert {"sasl_password", "ssl_keyfile"} <= _method_reads()["aiokafka_config"]
    assert _method_reads()["data_path"] == {"data_dir", "home"}


@pytest.mark.parametrize(
    ("command", "known"),
    [
        ("worker", {"grace_s", "home", "presence_timeout_s", "sasl_password", "topic_dwell"}),
        ("collector", {"max_event_bytes", "collector_sites", "topic_clickstream"}),
        ("delivery", {"collector_port", "delivery_group", "topic_invitations"}),
        ("dashboard", {"app_id", "dashboard_lookback_s"}),
        ("broker start", {"partitions", "broker_heap", "replication_factor"}),
        ("backtest", {"min_gap_s", "dwell_window_s"}),
    ],
)
def test_the_scan_finds_settings_the_code_is_known_to_read(command: str, known: set[str]) -> None:
    """Against a scan that quietly reaches nothing, and so passes everything."""
    handler = _handler(command)
    assert known <= _settings_read_by(handler)


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"up"}))
def test_each_command_offers_every_setting_its_code_reads(command: str) -> None:
    handler = _handler(command)
    missing = _settings_read_by(handler) - set(COMMANDS[command].fields())
    assert not missing, f"beckon {command} reads {sorted(missing)} but offers no flag for them"


def test_up_hands_every_setting_to_its_services() -> None:
    """`beckon up` passes its settings on whole (model_dump), so it offers them all."""
    assert set(COMMANDS["up"].fields()) == FIELDS
    assert COMMANDS["up"].groups == GROUPS


class _Noting(Settings):
    """Settings that note each field read, to run a command's code against its flags."""

    read: ClassVar[set[str]] = set()

    def __getattribute__(self, name: str) -> Any:
        if name in FIELDS:
            _Noting.read.add(name)
        return super().__getattribute__(name)


def _noting() -> _Noting:
    settings = _Noting()
    _Noting.read.clear()  # building it checks settings every command shares
    return settings


def test_running_the_backtest_reads_only_engine_settings(tmp_path: Path) -> None:
    rules, events, out = tmp_path / "rules.yaml", tmp_path / "events.jsonl", tmp_path / "out"
    rules.write_text("rules: []\n")
    events.write_text(
        '{"event_id": "e1", "type": "page_view", "visitor_id": "v1", "site_id": "s",'
        ' "ts": 1764583200000, "url": "https://shop.example/"}\n'
    )
    args = argparse.Namespace(
        rules=str(rules),
        events=str(events),
        out=str(out),
        decisions=None,
        capacity=None,
        processes=None,
    )
    assert cli.cmd_backtest(args, _noting()) == 0
    assert _Noting.read and _Noting.read <= set(COMMANDS["backtest"].fields())


def test_the_demo_shop_reads_the_collector_address_the_delivery_command_offers() -> None:
    from streams.delivery.demo_shop import collector_url

    assert collector_url(_noting()) == "http://localhost:8080"
    assert _Noting.read <= set(COMMANDS["delivery"].fields())
    assert {"collector_host", "collector_port"} <= _Noting.read
