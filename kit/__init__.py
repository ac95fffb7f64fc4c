"""kit: ten recent computer-vision and diffusion papers as code you can run, read and play with."""

__version__ = "0.1.0"
