"""Logs, their redaction, and Prometheus metrics."""
