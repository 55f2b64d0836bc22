"""The wave completion HTTP service."""
