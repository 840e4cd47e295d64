"""The operators' dashboard: the whole cluster's rates, funnel, lag and DLQ, read from Kafka."""
