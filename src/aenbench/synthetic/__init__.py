"""Synthetic ground-truth teachers."""
