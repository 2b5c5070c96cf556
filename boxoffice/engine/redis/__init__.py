"""Redis plumbing: the script gateway, auto-pipelines (one server, or one per cluster node),
the cluster client, keys, pub/sub and expiry wake-ups."""
