"""Several tempyral clusters: their metadata, the namespaces and histories replicated between them."""
