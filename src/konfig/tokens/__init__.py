"""Service accounts and API tokens: machine identities scoped to namespace patterns."""
