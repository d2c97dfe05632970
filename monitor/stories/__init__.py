"""Story grouping: the same news told by several outlets becomes one story (features, MinHash, grouping, metrics)."""
