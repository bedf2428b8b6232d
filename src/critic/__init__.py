"""critic: train, ship and watch a sentiment model for movie reviews."""

__version__ = "0.1.0"
