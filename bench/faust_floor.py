"""Faust's agent path: ``python -m bench.faust_floor --bootstrap H:P --topic T --app-id A``.

A Faust app with the worker's settings (``streams.worker.app.create_app``: RocksDB store, raw
serializers, the same commit settings) and one agent that reads the topic with
``take_events``, as ``beckon worker`` did before its intake (and still does under
``exactly_once``), and only counts. What it reaches is the most a worker reading through
a Faust agent could do on the machine; ``bench.live`` runs it over the same preloaded
topic as the worker.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, cast

import faust

from streams.settings import load_settings
from streams.worker.app import create_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser("python -m bench.faust_floor", description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--web-port", type=int, required=True)
    args = parser.parse_args(argv)
    settings = load_settings(bootstrap=args.bootstrap, app_id=args.app_id,
                             data_dir=args.data_dir, web_port=args.web_port)  # fmt: skip
    app = create_app(settings)
    raw: dict[str, Any] = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw",
           "value_serializer": "raw"}  # fmt: skip
    topic = app.topic(args.topic, **raw)
    counted = [0]

    async def count(stream: faust.StreamT[bytes]) -> None:
        batches = cast(faust.Stream[bytes], stream).take_events
        async for batch in batches(settings.batch_max, settings.batch_within_s):
            counted[0] += len(batch)

    app.agent(topic, name="count")(count)
    from faust.worker import Worker

    worker = Worker(app, loglevel="info", quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
