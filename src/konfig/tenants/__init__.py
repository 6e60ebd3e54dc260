"""Tenants: the hard isolation boundary."""
