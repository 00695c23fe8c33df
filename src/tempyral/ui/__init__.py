"""The official Temporal Web UI, served from the build embedded in the Temporal CLI."""
