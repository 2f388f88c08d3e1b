"""Helpers the tests import; conftest.py files hold fixtures only and are never imported."""
