#!/usr/bin/env bash
# Prints the Python versions safeops supports, one per line, from pyproject.toml's
# requires-python (">=3.A,<3.B": 3.A to 3.B-1): the wheels and CI use this list.
set -euo pipefail
cd "$(dirname "$0")/.."
spec=$(grep -m1 -E '^requires-python *= *">=3\.[0-9]+, *<3\.[0-9]+"' pyproject.toml) || {
  echo "python_versions.sh: pyproject.toml's requires-python is not \">=3.A,<3.B\"" >&2
  exit 1
}
oldest=$(sed -E 's/.*>=3\.([0-9]+).*/\1/' <<<"$spec")
first_unsupported=$(sed -E 's/.*<3\.([0-9]+).*/\1/' <<<"$spec")
for ((minor = oldest; minor < first_unsupported; minor++)); do
  echo "3.$minor"
done
