"""Test support shared by the suite's feature folders."""
