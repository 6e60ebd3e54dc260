"""Config entries: typed, validated, encrypted values in a namespace."""
