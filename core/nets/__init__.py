"""The torch networks, one per module."""
