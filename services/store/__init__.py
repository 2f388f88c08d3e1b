"""Storage: the leg-store and outbox ports, and their SQLite and Redis adapters."""
