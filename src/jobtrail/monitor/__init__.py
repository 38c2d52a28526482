"""The Redis state monitor: snapshots, diffs, removal causes, and the run's report."""
