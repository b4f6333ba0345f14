"""The replicator process: flows, partition ownership across workers, signals."""
