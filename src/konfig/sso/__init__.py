"""Single sign-on: OpenID Connect per tenant, just-in-time users, claims mapped to grants."""
