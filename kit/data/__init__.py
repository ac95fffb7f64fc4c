"""Generators and loaders that more than one series uses."""
