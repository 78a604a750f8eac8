"""The fleet simulator: scenarios run against the real control plane and real daemons."""
