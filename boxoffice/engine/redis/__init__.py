"""Redis plumbing: the script gateway, auto-pipeline, cluster client, keys, pub/sub and expiry wake-ups."""
