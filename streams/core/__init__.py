"""The pure core: journeys, rules, time, profile, dwell and messages.

Plain Python over plain values. It imports ``schemas``, the standard library and pure
libraries only (device-detector, cachetools): no Kafka, no Faust, no HTTP, no settings
object, no clock reads. The worker and ``beckon backtest`` drive it alike, which is what
makes the live pipeline and the backtest agree. docs/architecture.md has the rules.
"""
