"""delivery DTOs (stub)."""
