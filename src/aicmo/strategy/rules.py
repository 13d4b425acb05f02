"""Argument rules shared by every strategy repository (stub)."""
