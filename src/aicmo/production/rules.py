"""Argument rules shared by every production repository (stub)."""
