"""BabbleFish: a self-hosted real-time speech translator."""

__version__ = "0.1.0"
