"""The stresswatch application: configuration, command line and the wiring of the stages."""

__version__ = "0.1.0"
