"""Durable state: the `Store` interface and its backends (SQLite alone; Redis with a local SQLite copy in a cluster)."""
