"""The Kafka adapter: clients and topics (clients.py), the topic's incarnation id
(topic_identity.py)."""

from rater.kafka.clients import consumer, create_topics, ensure_topics, producer

__all__ = ["consumer", "create_topics", "ensure_topics", "producer"]
