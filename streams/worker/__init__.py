"""The live worker: the core driven by faust-streaming over the clickstream topic.

The only package that imports faust; the Faust internals it needs stay in
``streams.worker.faust_adapter``.
"""
