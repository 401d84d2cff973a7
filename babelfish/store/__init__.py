"""Durable state: the `Store` interface and its backends (SQLite today; Redis for several servers later)."""
