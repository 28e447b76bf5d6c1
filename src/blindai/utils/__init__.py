"""Compatibility namespace: BlindAI 0.3 code imports ``blindai.utils.errors``."""
