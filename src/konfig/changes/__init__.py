"""Protected namespaces: protection policies, change requests, review and merge."""
