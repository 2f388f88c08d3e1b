"""SQLite adapters: one file on one machine, shared by every worker."""
