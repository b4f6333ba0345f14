"""Copying partitions: fetch, plan (pure), produce; topic discovery, naming and filters."""
