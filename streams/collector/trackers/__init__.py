"""What trackers send, mapped to ClickEvents: Beckon's JSON, Snowplow and Segment.

Pure functions over decoded request bodies: no HTTP, no Kafka, no clock reads. What the
collector knows about the request beyond its body (the server's time, the User-Agent,
Accept-Language, the trusted country header) comes in as a :class:`Received`.

A request's events are all valid ClickEvents (checked with
:func:`schemas.events.validate_event`) or the mapping raises
:class:`~schemas.errors.InvalidEvent` whose paths name the field as the client wrote it
(``data[2].url``, ``batch[0].anonymousId``, ``[3].scroll_pct``). ``docs/collector.md``
has the tables of which field becomes what.
"""

from streams.collector.trackers.beckon import from_beckon
from streams.collector.trackers.common import (
    Batch,
    Received,
    corrected_ts,
    country_code,
    primary_language,
)
from streams.collector.trackers.segment import from_segment
from streams.collector.trackers.snowplow import from_snowplow_get, from_snowplow_post

__all__ = [
    "Batch",
    "Received",
    "corrected_ts",
    "country_code",
    "from_beckon",
    "from_segment",
    "from_snowplow_get",
    "from_snowplow_post",
    "primary_language",
]
