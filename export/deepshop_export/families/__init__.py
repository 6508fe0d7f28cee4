"""Model families: one sub-package per family (its network, export and metadata)."""
