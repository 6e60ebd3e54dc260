"""Groups: named sets of grants people belong to, made in Konfig or synced from the provider."""
