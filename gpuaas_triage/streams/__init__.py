"""The drivers around the core: the Faust worker, the CLI, the local broker."""
