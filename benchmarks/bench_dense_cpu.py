"""CPU benchmark: masked_dense training step vs plain TF dense and the composite workaround.

Runs the suite in safeops.bench.dense_cpu against the installed safeops (the same as
`python -m safeops bench --suite dense`). Options: --repeats, --seed, --json PATH.
"""

import sys

from safeops.bench import dense_cpu

if __name__ == "__main__":
    sys.exit(dense_cpu.main())
