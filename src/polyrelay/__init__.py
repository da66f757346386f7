"""polyrelay: a self-hosted AI API gateway."""

__version__ = "0.1.0"
