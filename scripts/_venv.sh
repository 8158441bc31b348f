# Sourced by scripts/demo and scripts/test: make sure .venv exists with the project installed.
# Usage: ensure_venv "<pip extras spec>"   e.g. ensure_venv "." or ensure_venv ".[test]"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

ensure_venv() {
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "stresswatch needs Python >= 3.11 (found $(python3 --version 2>&1))" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    # Debian and Raspberry Pi OS ship venv/ensurepip in a separate package.
    if ! python3 -m venv .venv 2>/dev/null; then
      rm -rf .venv
      as_root apt-get update -qq
      as_root apt-get install -y -qq python3-venv
      python3 -m venv .venv
    fi
  fi
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --editable "$1"
}
