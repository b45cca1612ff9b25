"""CPU benchmark: masked_dense's two designs for indicator weights, each over the step without.

Runs the suite in safeops.bench.indicator_cpu against the installed safeops (the same as
`python -m safeops bench --suite indicator`). Options: --repeats, --seed, --json PATH.
"""

import sys

from safeops.bench import indicator_cpu
from safeops.bench.timing import suite_main

if __name__ == "__main__":
    sys.exit(suite_main(indicator_cpu))
