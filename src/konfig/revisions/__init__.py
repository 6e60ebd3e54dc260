"""Revisions: the append-only record of every committed change to a namespace."""
