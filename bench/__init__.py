"""Benchmarks for Beckon: a synthetic clickstream and the harnesses that time the engine.

Not part of the installed package; run from the repository root (``python -m bench.…``).
"""
