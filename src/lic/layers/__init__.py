"""Reusable neural-network layers shared by the paper modules (pure PyTorch, CPU-capable)."""
