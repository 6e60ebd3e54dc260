"""Webhooks: signed change notifications per Standard Webhooks, sent from a transactional outbox."""
