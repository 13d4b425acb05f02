"""production DTOs (stub)."""
