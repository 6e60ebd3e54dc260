"""The read path: resolved configs, their cache, change push and the replicas' notifications."""
