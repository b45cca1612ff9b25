"""Static profile of the CUDA kernels' sm_90 machine code: registers, instructions, tensor-core
MMAs, and the epilogue (what follows a kernel's last MMA), per kernel, without a GPU.

    python tools/sass_report.py [--source cuda/masked_dense.cu] [--match REGEX] [--arch sm_90]

Compiles the source to a cubin with the flags of cuda/CMakeLists.txt, disassembles it with
cuobjdump (PyPI's nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm, which cuobjdump runs, or ones
on the PATH) and prints one line per kernel whose demangled name matches REGEX. Counts are
static (instructions in the code, not executed): they compare two versions of a kernel, as
benchmarks/RESULTS.md does for the fused epilogue.
The epilogue's division (MUFU.RCP) and global load (LDG) counts are printed apart, and so are
the bytes ptxas spills to local memory (stores + loads; 0 is what the launch bounds promise) and
`loop`: the instructions of the largest loop that stores to global memory (the epilogue's loop
over 16-byte output groups, all its paths; for SIMT kernels, with no MMA, the only epilogue
figure).
"""

import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
MMA = re.compile(r"\b(HMMA|DMMA|IMMA|HGMMA)\b")
INSTRUCTION = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*)")


def nvidia_tool(name, package):
    """The path of a CUDA binary tool: from PyPI's nvidia packages, else the PATH."""
    try:
        import nvidia

        for root in nvidia.__path__:
            for found in pathlib.Path(root).glob(f"cu*/bin/{name}"):
                return str(found)
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        sys.exit(f"{name} not found: pip install {package}")
    return found


def disassemble(cubin):
    # cuobjdump -sass runs nvdisasm, which it looks for on the PATH or at NVDISASM_PATH.
    nvdisasm = nvidia_tool("nvdisasm", "nvidia-cuda-nvdisasm")
    env = dict(os.environ, NVDISASM_PATH=str(pathlib.Path(nvdisasm).parent))
    cmd = [nvidia_tool("cuobjdump", "nvidia-cuda-cuobjdump"), "-sass", str(cubin)]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout


def compile_cubin(source, arch, out):
    nvcc = shutil.which("nvcc") or "/usr/local/cuda/bin/nvcc"
    cmd = [
        nvcc, "-cubin", f"-arch={arch}", "-O3", "-std=c++17", "--expt-relaxed-constexpr",
        f"-I{REPO / 'cuda'}", f"-I{REPO / 'csrc' / 'kernels'}", "-DSAFEOPS_WITH_CUDA=1",
        "-Xptxas", "-v", "-o", str(out), str(source),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    registers, spills, current = {}, {}, None
    for line in done.stderr.splitlines():
        if m := re.search(r"Compiling entry function '(\S+)'", line):
            current = m.group(1)
        elif current and (m := re.search(r"Used (\d+) registers", line)):
            registers[current] = int(m.group(1))
        elif current and (
            m := re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        ):
            spills[current] = int(m.group(1)) + int(m.group(2))
    return registers, spills


def functions(sass):
    """(mangled name, [(offset, opcode, operands), ...]) per function of a cuobjdump -sass
    listing."""
    name, ops = None, []
    for line in sass.splitlines():
        if m := re.search(r"Function : (\S+)", line):
            if name:
                yield name, ops
            name, ops = m.group(1), []
        elif name and (m := INSTRUCTION.search(line)):
            ops.append((int(m.group(1), 16), m.group(3), m.group(4)))
    if name:
        yield name, ops


def demangle(names):
    out = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True)
    return dict(zip(names, out.stdout.splitlines(), strict=True))


def store_loop(code):
    """Instructions in the largest loop (a backward branch and what it jumps over) that writes
    global memory and holds no MMA: the epilogue's loop over output groups, every path of it."""
    best = 0
    for at, op, operands in code:
        target = re.search(r"0x([0-9a-f]+)", operands) if op.startswith("BRA") else None
        if target and int(target.group(1), 16) < at:
            body = [o for a, o, _ in code if int(target.group(1), 16) <= a <= at]
            if any(o.startswith("STG") for o in body) and not any(MMA.search(o) for o in body):
                best = max(best, len(body))
    return best


def profile(code):
    ops = [op for _, op, _ in code]
    mma = [i for i, op in enumerate(ops) if MMA.search(op)]
    epilogue = ops[mma[-1] + 1 :] if mma else []
    return {
        "instructions": len(ops),
        "mma": len(mma),
        "epilogue": len(epilogue) if mma else None,
        "store_loop": store_loop(code),
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
        registers, spills = compile_cubin(args.source, args.arch, cubin)
        sass = disassemble(cubin)
    found = list(functions(sass))
    names = demangle([name for name, _ in found])
    pattern = re.compile(args.match)
    print("regs  spill  instr  mma  epilogue  rcp  ldg  loop  kernel")
    for name, ops in found:
        pretty = names[name].replace("safeops::cuda::(anonymous namespace)::", "")
        if not pattern.search(pretty):
            continue
        p = profile(ops)
        epi = "-" if p["epilogue"] is None else str(p["epilogue"])
        print(
            f"{registers.get(name, 0):4d}  {spills.get(name, 0):5d}  {p['instructions']:5d}  "
            f"{p['mma']:3d}  {epi:>8}  {p['epilogue_rcp']:3d}  {p['epilogue_ldg']:3d}  "
            f"{p['store_loop']:4d}  {pretty}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
