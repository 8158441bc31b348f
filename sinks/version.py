"""The installed package's version, for what the sinks announce (Home Assistant's device block)."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("stresswatch")
except PackageNotFoundError:  # a source tree that was never installed
    VERSION = "0+unknown"
