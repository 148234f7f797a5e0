"""Start, stop and inspect the local stack; see sandbox/README.md."""
