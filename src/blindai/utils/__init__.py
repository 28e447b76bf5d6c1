"""Compatibility namespace: BlindAI 0.3 code imports ``blindai.utils.errors``."""

from blindai.utils import errors

__all__ = ["errors"]
