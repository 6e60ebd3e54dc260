"""Working across environments: a tenant's namespaces side by side (comparison, copying values
from one to another as one reviewed revision) and searched together.

This package sits above ``delivery`` (a resolved comparison reads what a service would
receive) and below ``web``, which shows it.
"""
