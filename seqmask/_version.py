"""seqmask's version, in a module of its own: run files and exported models record it, and
importing it from here (not from the package's lazy `__init__`) creates no import cycle."""

__version__ = "0.1.0"
