"""Backups: timestamped, signed, still-encrypted snapshots of a tenant, and restores."""
