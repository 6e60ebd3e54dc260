"""A local stand-in for the Kubernetes deployment: several ``konfig serve`` replicas on one
PostgreSQL database and Redis, behind nginx. ``make cluster`` runs it (``python -m
deploy.cluster``); ``tests/test_cluster.py`` runs the same code under load.

It lives beside ``deploy/k8s`` rather than in the ``konfig`` package because it is a deployment
harness, not part of the product: it needs nginx on the machine and is not in the image.
"""
