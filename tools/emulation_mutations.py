"""Seeded bugs for tools/emulation_check.py: each is one textual change to a copy of the CUDA
kernels that the emulated tests/gpu must catch. A mutation must match its source exactly once,
so that it cannot silently stop applying when the kernels change (the check then fails and
says so).
"""

import dataclasses
import pathlib


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # in cuda/
    old: str
    new: str
    tests: tuple  # pytest arguments (relative to tests/gpu) of the cases that must fail
    why: str


_MASKED_DENSE = ("test_masked_dense_gpu.py", "-k", "matches_reference")

MUTATIONS = (
    Mutation(
        "gemm_mainloop_barrier",
        "masked_dense_gemm.cuh",
        old="      if (next) put(cur ^ 1);  // the other stage was last read before the previous "
        "barrier\n      __syncthreads();\n",
        new="      if (next) put(cur ^ 1);  // the other stage was last read before the previous "
        "barrier\n",
        tests=_MASKED_DENSE,
        why="the GEMM main loop without its barrier: warps read a shared-memory stage before "
        "the others have written it, and overwrite one still being read",
    ),
    Mutation(
        "vector_tail_guard",
        "select.cu",
        old="        full(vec && cnt == N) {",
        new="        full(vec) {",
        tests=("test_select_gpu.py", "-k", "every_output_element_is_written and not large"),
        why="select's flat passes use their 16-byte vector path on the partial last group: "
        "a store past the end of the output",
    ),
    Mutation(
        "wmma_lane_pointer",
        "masked_dense_gemm.cuh",
        old="load_matrix_sync(fa, a + TA::at(m0 + 16 * i, k), TA::kLd);",
        new="load_matrix_sync(fa, a + TA::at(m0 + 16 * i, k) + (threadIdx.x % 32 == 7 ? 16 : 0), "
        "TA::kLd);",
        tests=_MASKED_DENSE,
        why="one lane of each warp passes wmma::load_matrix_sync a different (aligned) pointer",
    ),
    # The test holes of an independent numerics review: each of these bugs went unseen by
    # tests/gpu before its numerics suites (tests/gpu/*_numerics_gpu.py).
    Mutation(
        "condition_bit_zero",
        "select.cu",
        old="m[k] = ((bytes >> (8 * k)) & 0xffu) != 0;",
        new="m[k] = ((bytes >> (8 * k)) & 0x1u) != 0;",
        tests=("test_select_numerics_gpu.py", "-k", "condition_bytes_other_than_one"),
        why="the vector path reads only bit 0 of each condition byte: 2, 0x80, 0xFE are false",
    ),
    Mutation(
        "general_sum_from_plus_zero",
        "select.cu",
        old="    Acc acc = sum_identity<Acc>(), blk = sum_identity<Acc>();\n",
        new="    Acc acc = Acc(0), blk = Acc(0);\n",
        tests=("test_select_numerics_gpu.py", "-k", "negative_zeros"),
        why="the general gradient reduction starts from +0: a sum of -0 terms becomes +0",
    ),
    Mutation(
        "dz_strip_offset",
        "masked_dense.cu",
        old="const int64 col = (strip * p.tcol + tx) * kV;",
        new="const int64 col = (strip * (p.tcol + 1) + tx) * kV;",
        tests=("test_masked_dense_numerics_gpu.py", "-k", "more_columns_than_one_strip"),
        why="the backward's pre-pass starts each column strip after the first one thread's "
        "columns too far right, leaving columns unwritten; it shows only when N spans "
        "several strips",
    ),
    Mutation(
        "dx_not_zeroed_without_outputs",
        "masked_dense.cu",
        old="    if (args.rows * args.K > 0) {\n      cudaMemsetAsync(dx,",
        new="    if (false) {\n      cudaMemsetAsync(dx,",
        tests=("test_masked_dense_numerics_gpu.py", "-k", "no_output_columns"),
        why="with N = 0 nothing flows back, but dx is left as it was instead of zeroed",
    ),
    Mutation(
        "divergent_barrier",
        "cuda_common.cuh",
        old="  if (lane == 0) warp_sums[warp] = v;\n  __syncthreads();\n",
        new="  if (lane == 0) {\n    warp_sums[warp] = v;\n    __syncthreads();\n  }\n",
        tests=("test_select_gpu.py", "-k", "where_backward and not nan_upstream and not large"),
        why="block_sum's barrier moved into the code only lane 0 of each warp runs",
    ),
    Mutation(
        "prologue_half_warp_count",
        "masked_input.cu",
        old="for (int off = kWarp / 2; off > 0; off >>= 1)",
        new="for (int off = kWarp / 2; off > 1; off >>= 1)",
        tests=("test_masked_input_gpu.py", "-k", "forward and renorm and 9x300"),
        why="the row prologue's warp sum of missing entries skips its last step: odd and even "
        "lanes each count half a row, and the scale K / n_obs is wrong",
    ),
    Mutation(
        "prologue_scaled_not_selected",
        "masked_input.cu",
        old="o[k] = m ? B(0) : kept;",
        new="o[k] = kept;",
        tests=("test_masked_input_gpu.py", "-k", "forward and renorm and 37x8"),
        why="the prologue writes s * x at a missing entry instead of selecting +0: NaN reaches "
        "the GEMM",
    ),
    # The forward epilogue's per-row scale and per-thread bias (docs/design.md).
    Mutation(
        "row_scale_of_first_row",
        "masked_dense_gemm.cuh",
        old="mine = j == q ? c : mine;",
        new="mine = j == 0 ? c : mine;",
        tests=("test_masked_dense_gpu.py", "-k", "matches_reference and renorm"),
        why="every lane of a row computes s from the count of the thread's first row: the rows "
        "of the later loader vectors get another row's renormalisation",
    ),
    Mutation(
        "bias_of_first_column",
        "masked_dense.cu",
        old="const int64 bias_col = n0 + G::epilogue_col();",
        new="const int64 bias_col = n0;",
        tests=_MASKED_DENSE,
        why="every thread reads the bias of the tile's first 16-byte column group, not of its own "
        "epilogue column",
    ),
    # Indicator weights U (m @ U in the forward, dU = m^T @ dz in the backward).
    Mutation(
        "indicator_term_scaled_by_s",
        "masked_dense.cu",
        old="""    if (p.renormalize) G::scale_rows(mma, smem, row_scale);
    const typename G::Operand u{p.u, p.N, n0, p.N, p.vec_u};
    G::template mainloop<md::MaskA::kIndicator, true>(mma, smem, a, u, 0, p.K, p.nonfinite,
                                                      missing);
""",
        new="""    const typename G::Operand u{p.u, p.N, n0, p.N, p.vec_u};
    G::template mainloop<md::MaskA::kIndicator, true>(mma, smem, a, u, 0, p.K, p.nonfinite,
                                                      missing);
    if (p.renormalize) G::scale_rows(mma, smem, row_scale);
""",
        tests=("test_masked_dense_indicator_gpu.py", "-k", "matches_reference and renorm"),
        why="the forward multiplies the accumulators by s after m @ U was added, not before: "
        "the indicator term is scaled by s too",
    ),
    Mutation(
        "du_reduces_dw_partials",
        "masked_dense.cu",
        old="s += p.du_partial[q * KN + (e - KN)];",
        new="s += p.dw_partial[q * KN + (e - KN)];",
        tests=("test_masked_dense_indicator_gpu.py", "-k", "matches_reference"),
        why="dU is reduced from dW's partial sums (a wrong workspace offset)",
    ),
    Mutation(
        "indicator_ignores_nonfinite",
        "masked_dense_gemm.cuh",
        old="b[i] = missing_bits<T>(V::get(v[j], i), nonfinite) ? one : Bits<T>(0);",
        new="b[i] = missing_bits<T>(V::get(v[j], i), false) ? one : Bits<T>(0);",
        tests=("test_masked_dense_indicator_gpu.py", "-k", "nonfinite"),
        why="the indicator tile tests NaN only: under missing='nonfinite' an Inf is masked "
        "out of xf @ W but never reaches U or dU",
    ),
)


SOURCES = (".cu", ".cuh", ".h")


def write_sources(src, dst, mutation=None):
    """Copies the CUDA sources and headers of `src` to `dst` with `mutation` applied (None: as
    they are); raises ValueError when the mutation does not match exactly once."""
    dst = pathlib.Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in pathlib.Path(src).iterdir() if p.suffix in SOURCES):
        text = path.read_text()
        if mutation is not None and path.name == mutation.file:
            count = text.count(mutation.old)
            if count != 1:
                raise ValueError(f"mutation {mutation.name}: found {count} times in {path.name}")
            text = text.replace(mutation.old, mutation.new)
        target = dst / path.name
        if not target.exists() or target.read_text() != text:  # unchanged files keep their
            target.write_text(text)  # timestamps, so only mutated sources rebuild
