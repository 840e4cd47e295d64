"""How fast the console's preview is: ``python -m bench.preview [--events N] [--processes P]``.

The issue's target: 1,000,000 events previewed in at most about 15 s on this 2-core
machine, both rule sets (the draft and the set in force) included.

The events come from ``bench.clickstream`` (written by a child process, not timed, as in
``bench.backtest``); the set in force is the standard twenty rules of ``bench.rules`` and
the draft is the same set with one rule changed (``pricing-hesitation`` fires after 20 s
of dwell instead of 30). The file is read into a list of lines (not timed: the console
has its lines in memory already, from Kafka or an upload); a preview of the first 20,000
lines warms the process up, untimed, as a console's earlier previews would have; then
``streams.console.preview.run_preview`` is timed, once per ``--processes`` given, and
then, for reference, one ``beckon backtest`` of the set in force over the same lines
(``streams.backtest.read_events`` and ``run``, the garbage collector off as
``backtest_file`` has it).

On a busy machine the wall clock says little, so each run also prints the CPU seconds of
this process and of the child: on an idle 2-core machine a 2-process preview takes
about this process's CPU time (the child runs beside it), and the ratio to the backtest
shows what the second rule set costs.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import sys
import time
from typing import Any

from bench.backtest import _folder, _inputs
from schemas.rules import RuleSet, load_rules_file
from streams.backtest import Result, read_events, run
from streams.console.preview import run_preview
from streams.core.engine import Limits
from streams.core.profile import device_of
from streams.core.rules import CompiledRules

TARGET_S = 15.0
CHANGED = "pricing-hesitation"
WARM_UP = 20_000  # lines previewed, untimed, before the timed runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.preview",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events [1000000]")
    parser.add_argument("--visitors", type=int, default=100_000, help="visitors [100000]")
    parser.add_argument("--seed", type=int, default=7, help="clickstream seed [7]")
    parser.add_argument("--data", help="keep (and reuse) the generated files in this folder")
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[2, 1],
        help="run once with each: 2 forks a child for the set in force [2 1]",
    )
    args = parser.parse_args(argv)

    with _folder(args.data) as folder:
        events_path, rules_path = _inputs(folder, args.events, args.visitors, args.seed)
        in_force = load_rules_file(rules_path)
        draft = _changed(in_force)
        with events_path.open("rb") as handle:
            lines = handle.read().splitlines()
        # A console that has answered once has paid the first-use costs (device-detector
        # loads in about 1.3 s, each user agent's first parse, time zones): so has this one.
        device_of("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
        run_preview(lines[:WARM_UP], CompiledRules.of(draft), CompiledRules.of(in_force), Limits())
        print(f"input: {events_path} ({len(lines)} lines), draft changes {CHANGED!r}")
        print(f"python {sys.version.split()[0]}\n")
        for processes in args.processes:
            # Compiled afresh each run: CompiledRules caches pages, a warm cache would flatter.
            before, started = os.times(), time.perf_counter()
            answer = run_preview(
                lines,
                CompiledRules.of(draft),
                CompiledRules.of(in_force),
                Limits(),
                processes=processes,
            )
            took, after = time.perf_counter() - started, os.times()
            _report(processes, answer, took, before, after)
        # Before the reference backtest, which holds every parsed event at once.
        # ru_maxrss is in KiB on Linux; the children's is the largest child's.
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: this process {own:.0f} MB (the lines included), a child {child:.0f} MB")
        before, started = os.times(), time.perf_counter()
        _backtest(lines, CompiledRules.of(in_force))
        took, after = time.perf_counter() - started, os.times()
        print(
            f"reference, one backtest of the set in force over the same lines: {took:.2f} s "
            f"wall, {_cpu(before, after):.2f} s CPU"
        )
    return 0


def _backtest(lines: list[bytes], rules: CompiledRules) -> None:
    gc.disable()
    try:
        result = Result()
        run(read_events(lines, result), rules, Limits(), result)
    finally:
        gc.enable()


def _cpu(before: Any, after: Any, *, children: bool = False) -> float:
    if children:
        return float(
            after.children_user
            - before.children_user
            + after.children_system
            - before.children_system
        )
    return float(after.user - before.user + after.system - before.system)


def _changed(ruleset: RuleSet) -> RuleSet:
    rule = ruleset.get(CHANGED)
    if rule is None:
        raise SystemExit(f"the bench rules have no rule {CHANGED!r}")
    trigger = rule.trigger.model_copy(update={"dwell_seconds": 20})
    return ruleset.with_rule(rule.model_copy(update={"trigger": trigger}))


def _report(processes: int, answer: dict[str, Any], took: float, before: Any, after: Any) -> None:
    n = answer["events"]
    verdict = "meets" if took <= TARGET_S else f"{took / TARGET_S:.1f}x over"
    print(
        f"processes={processes}: {n} events in {took:6.2f} s = {n / took:>9,.0f} events/s "
        f"({verdict} the {TARGET_S:.0f} s target); {answer['visitors']} visitors, "
        f"{answer['bad_lines']} bad lines"
    )
    print(
        f"    CPU: this process {_cpu(before, after):.2f} s, "
        f"the child {_cpu(before, after, children=True):.2f} s"
    )
    for row in answer["rules"]:
        if row["difference"]["invitations"] or row["rule_id"] == CHANGED:
            d, f = row["draft"], row["in_force"]
            print(
                f"    {row['rule_id']}: invitations {d['invitations']} (draft) vs "
                f"{f['invitations']} (in force), difference {row['difference']}"
            )


if __name__ == "__main__":
    sys.exit(main())
