"""Namespaces: path-named containers of config entries (``payments/production``)."""
