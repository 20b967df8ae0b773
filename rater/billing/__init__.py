"""Billing state beyond the stream: re-rating stored CDRs, reconciling balances against
ClickHouse, and repairing the summary tables derived from rated_cdrs."""
