"""Argument rules shared by every qc repository (stub)."""
