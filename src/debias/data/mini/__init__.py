"""Generators of the embedded mini datasets, written in the real datasets' on-disk formats."""
