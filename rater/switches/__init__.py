"""Switches: their per-switch settings (registry.py) and the number rules that use them
(numbers.py)."""
