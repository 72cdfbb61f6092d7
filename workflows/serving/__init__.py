"""Serving: the promotion gate and the served forecast."""
