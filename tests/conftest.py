"""Fixtures shared by every tier. The broker fixtures live in tests/integration/conftest.py."""
