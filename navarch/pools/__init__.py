"""Pools: groups of identical nodes that navarch sizes and heals.

The pool manager (`manager`) runs one scaling loop per pool. The pure parts of a round live beside
it: the rules the core applies to every autoscaler's recommendation (`behavior`), which nodes leave
on scale-down (`victims`), where a new node can come from (`candidates`, `instance_types`) and how
provisioning fails over between providers (`failover`).
"""
