"""The ``konfig`` command line."""

from konfig.cli.app import app, main

__all__ = ["app", "main"]
