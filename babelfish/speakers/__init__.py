"""Who is speaking: voice embeddings (embedder), the known voices (registry), backups (backup)."""
