"""strategy DTOs (stub)."""
