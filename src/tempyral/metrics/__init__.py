"""Prometheus metrics named as the reference's (server_metrics.py), served on --metrics-port (http.py)."""

from tempyral.metrics.server_metrics import ServerMetrics

__all__ = ["ServerMetrics"]
