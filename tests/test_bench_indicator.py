"""The CPU benchmark of the two indicator designs: each timed step is the design it names (the
suite checks the traced ops and raises otherwise), the limit is restored, and a tiny run
reports finite ratios and the design masked_dense picks for the shape."""

import math

import pytest

import safeops.dense
from safeops.bench import indicator_cpu


@pytest.mark.parametrize("name", indicator_cpu.DESIGNS)
def test_design_context_restores_the_limit(name):
    limit = safeops.dense.CPU_INDICATOR_EPILOGUE_MAX_K
    with pytest.raises(KeyError), indicator_cpu._design(safeops.dense, name):
        assert safeops.dense.CPU_INDICATOR_EPILOGUE_MAX_K != limit
        raise KeyError
    assert safeops.dense.CPU_INDICATOR_EPILOGUE_MAX_K == limit


def test_tiny_run():
    above = safeops.dense.CPU_INDICATOR_EPILOGUE_MAX_K + 1
    results = indicator_cpu.run(
        shapes=((32, 4, 8), (4, above, 3)), fractions=(0.5,), repeats=2, seed=0
    )
    assert [r["runs"] for r in results] == ["epilogue", "matmul"]
    for r in results:
        assert set(r["ms"]) == {"none", "epilogue", "matmul"}
        for name in indicator_cpu.DESIGNS:
            ratio = r[f"{name}_vs_none"]
            assert math.isfinite(ratio) and ratio > 0
    text = indicator_cpu.report(results)
    assert "epilogue vs no U" in text and "32x4x8" in text
