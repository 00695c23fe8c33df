"""tempyral: a Temporal-compatible durable-execution server."""

__version__ = "0.1.0"
# The Temporal server version tempyral answers with: clients and the Web UI gate features on it.
SERVER_VERSION = "1.32.0"
