"""The stresswatch application: configuration, command line and the wiring of the stages."""

__all__ = ["__version__"]


def __getattr__(name: str):
    # Read from the package metadata only when asked: importlib.metadata costs ~30 ms at start-up.
    if name == "__version__":
        from sinks.version import VERSION

        return VERSION
    raise AttributeError(name)
