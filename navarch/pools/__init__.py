"""Pools: groups of identical nodes that navarch sizes and heals."""
