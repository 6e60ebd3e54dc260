"""The audit log: an append-only record of mutations, reveals, logins and denials."""
