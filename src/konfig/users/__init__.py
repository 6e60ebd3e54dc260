"""Users: people with an email, a password, one tenant and one role."""
