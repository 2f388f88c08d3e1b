"""Redis adapters: one server shared by several instances."""
