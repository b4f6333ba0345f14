"""Replication inside a multi-broker region: leader state, follower fetchers, cluster link."""
