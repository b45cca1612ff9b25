#!/usr/bin/env bash
# Prints the interpreter of a Python version: find_python.sh 3.12
#
# Looks for `python3.12` on the PATH, then for a pyenv installation of 3.12 (whose shims only
# answer for the versions pyenv has selected). Exits 1, saying so, when there is none.
set -euo pipefail
version="$1"
works() { "$1" -c "import sys; assert sys.version.startswith('$version.')" 2>/dev/null; }

if command -v "python$version" >/dev/null && works "python$version"; then
  command -v "python$version"
  exit 0
fi
if command -v pyenv >/dev/null; then
  installed=$(pyenv versions --bare | grep -E "^${version//./\\.}\.[0-9]+$" | sort -V | tail -n 1 || true)
  if [ -n "$installed" ]; then
    python=$(PYENV_VERSION="$installed" pyenv which "python$version")
    if works "$python"; then
      echo "$python"
      exit 0
    fi
  fi
fi
echo "find_python.sh: no Python $version (neither python$version on the PATH nor a pyenv" \
  "installation of it)" >&2
exit 1
