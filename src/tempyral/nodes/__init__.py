"""Several server processes ("nodes") serving one cluster from one database: membership, shard ownership, and
passing work to the node that owns it (docs/DESIGN.md §12)."""
