"""callrelay's benchmarks against the quickstart code it replaces: `python -m bench`."""
