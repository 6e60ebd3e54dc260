"""Konfig: typed, versioned, encrypted configuration for microservices."""

__version__ = "0.1.0"
