"""Kafka clients and topics: the publisher, the invitation consumer, topic creation and the
rules topic. kafka-python and aiokafka, never Faust."""
