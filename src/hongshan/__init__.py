"""Hongshan: an open IoT platform for a smart town."""

__version__ = "0.1.0"
