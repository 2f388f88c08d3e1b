"""Forwarding SDK messages and leg updates to backends: events, delivery, subscriptions."""
