"""`rater ingest`: switches' CDR files published to the cdrs topic (docs/SWITCHES.md).

files.py splits files into records (Master.csv lines, *.cdr.json documents, JSONL); sender.py
publishes them with the `rater-switch` header and the account as the key; follow.py tails a
growing Master.csv like `tail -F`, its position kept in a state file; bridge.py forwards a
switch's own Kafka topic (`--from-topic`).
"""
