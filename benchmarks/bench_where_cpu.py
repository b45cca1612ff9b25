"""CPU benchmark: safe_where and fill_missing forward+backward vs tf.where (float32).

Runs the suite in safeops.bench.where_cpu, the same as `python -m safeops bench`, against the
installed safeops. Options: --sizes, --repeats, --seed, --json PATH.
"""

import sys

from safeops.bench import where_cpu

if __name__ == "__main__":
    sys.exit(where_cpu.main())
