"""safeops' benchmark suites, importable so that `python -m safeops bench` and the scripts in
benchmarks/ run the same code.

- where_cpu: safe_where and fill_missing forward+backward against tf.where on the CPU
  (TensorFlow; `python -m safeops bench`).
- where_gpu: the CUDA kernels through safeops.native against a device copy and torch (torch,
  no TensorFlow; run by tools/gpu_check.sh).

Every suite reports ratios measured in one process (the candidates interleaved, medians), never
absolute targets, so that noise from a shared machine affects both sides alike.
"""
