"""Argument rules shared by every delivery repository (stub)."""
