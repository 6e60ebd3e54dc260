"""Passwords, JWTs, encryption keys and API token secrets."""
