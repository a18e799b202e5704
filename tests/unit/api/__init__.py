"""Unit tests of the HTTP layer's parts: security, middleware."""
