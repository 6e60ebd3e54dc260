"""Authentication: login, JWT access and refresh tokens, the current principal."""
