"""Bounds on everything a peer can send. Every decoder checks them before trusting input."""

from __future__ import annotations

from dataclasses import dataclass

KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 8 * MIB
    max_entry_bytes: int = 4 * MIB
    max_ops_per_entry: int = 5000
    max_depth: int = 8
    max_string_bytes: int = 64 * KIB
    max_list_items: int = 10_000
    max_map_items: int = 10_000
    max_entries_per_message: int = 1000
    max_frontier_logs: int = 100_000
    max_future_skew_ms: int = 10 * 60 * 1000  # a peer's clock may run this far ahead of ours
    max_log_id_bytes: int = 64
    max_record_id_bytes: int = 256


DEFAULT_LIMITS = Limits()
