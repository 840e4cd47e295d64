"""The HTTP collector: Beckon JSON, Snowplow and Segment requests in, ClickEvents to Kafka."""
