"""GPU benchmark: the CUDA where / fill_missing kernels through safeops.native vs a device copy
and torch.where + autograd (torch, no TensorFlow).

Runs the suite in safeops.bench.where_gpu against the installed safeops (tools/gpu_check.sh runs
it on the GPU machine). Options: --sizes, --dtype, --repeats, --json PATH.
"""

import sys

from safeops.bench import where_gpu

if __name__ == "__main__":
    sys.exit(where_gpu.main())
