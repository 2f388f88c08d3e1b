"""Quickstart-style apps callrelay is measured against, run under gunicorn like callrelay."""
