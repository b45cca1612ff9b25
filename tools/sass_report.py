"""Static profile of the CUDA kernels' sm_90 machine code: registers, instructions, tensor-core
MMAs, and the epilogue (what follows a kernel's last MMA), per kernel, without a GPU.

    python tools/sass_report.py [--source cuda/masked_dense.cu] [--match REGEX] [--arch sm_90]

Compiles the source to a cubin with the flags of cuda/CMakeLists.txt, disassembles it with
cuobjdump (PyPI's nvidia-cuda-cuobjdump, or one on the PATH) and prints one line per kernel
whose demangled name matches REGEX. Counts are static (instructions in the code, not executed):
they compare two versions of a kernel, as benchmarks/RESULTS.md does for the fused epilogue.
The epilogue's division (MUFU.RCP) and global load (LDG) counts are printed apart.
"""

import argparse
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
MMA = re.compile(r"\b(HMMA|DMMA|IMMA|HGMMA)\b")
INSTRUCTION = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)")


def cuobjdump():
    try:
        import nvidia

        for root in nvidia.__path__:
            for found in pathlib.Path(root).glob("cu*/bin/cuobjdump"):
                return str(found)
    except ImportError:
        pass
    found = shutil.which("cuobjdump")
    if not found:
        sys.exit("cuobjdump not found: pip install nvidia-cuda-cuobjdump")
    return found


def compile_cubin(source, arch, out):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    cmd = [
        nvcc, "-cubin", f"-arch={arch}", "-O3", "-std=c++17", "--expt-relaxed-constexpr",
        f"-I{REPO / 'cuda'}", f"-I{REPO / 'csrc' / 'kernels'}", "-DSAFEOPS_WITH_CUDA=1",
        "-Xptxas", "-v", "-o", str(out), str(source),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    registers, current = {}, None
    for line in done.stderr.splitlines():
        if m := re.search(r"Compiling entry function '(\S+)'", line):
            current = m.group(1)
        elif current and (m := re.search(r"Used (\d+) registers", line)):
            registers[current] = int(m.group(1))
    return registers


def functions(sass):
    """(mangled name, [opcode, ...]) per function of a cuobjdump -sass listing."""
    name, ops = None, []
    for line in sass.splitlines():
        if m := re.search(r"Function : (\S+)", line):
            if name:
                yield name, ops
            name, ops = m.group(1), []
        elif name and (m := INSTRUCTION.search(line)):
            ops.append(m.group(2))
    if name:
        yield name, ops


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, out.stdout.splitlines(), strict=True))


def profile(ops):
    mma = [i for i, op in enumerate(ops) if MMA.search(op)]
    epilogue = ops[mma[-1] + 1 :] if mma else []
    return {
        "instructions": len(ops),
        "mma": len(mma),
        "epilogue": len(epilogue) if mma else None,
        "epilogue_rcp": sum(op.startswith("MUFU.RCP") for op in epilogue),
        "epilogue_ldg": sum(op.startswith("LDG") for op in epilogue),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(REPO / "cuda" / "masked_dense.cu"))
    parser.add_argument("--match", default="forward_kernel", help="regex on demangled names")
    parser.add_argument("--arch", default="sm_90")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cubin = pathlib.Path(tmp) / "kernels.cubin"
        registers = compile_cubin(args.source, args.arch, cubin)
        sass = subprocess.run(
            [cuobjdump(), "-sass", str(cubin)], capture_output=True, text=True, check=True
        ).stdout
    found = list(functions(sass))
    names = demangle([name for name, _ in found])
    pattern = re.compile(args.match)
    print("regs  instr  mma  epilogue  rcp  ldg  kernel")
    for name, ops in found:
        pretty = names[name].replace("safeops::cuda::(anonymous namespace)::", "")
        if not pattern.search(pretty):
            continue
        p = profile(ops)
        epi = "-" if p["epilogue"] is None else str(p["epilogue"])
        print(
            f"{registers.get(name, 0):4d}  {p['instructions']:5d}  {p['mma']:3d}  {epi:>8}  "
            f"{p['epilogue_rcp']:3d}  {p['epilogue_ldg']:3d}  {pretty}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
