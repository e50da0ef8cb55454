"""Persistence: run directories, snapshots and logs."""
