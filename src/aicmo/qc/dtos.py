"""qc DTOs (stub)."""
