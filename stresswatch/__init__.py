"""The stresswatch application: configuration, command line and the wiring of the stages."""

from sinks.version import VERSION as __version__

__all__ = ["__version__"]
