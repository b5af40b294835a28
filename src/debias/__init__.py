"""debias-repro: reproduce four papers on removing bias from neural networks."""

__version__ = "0.1.0"
