"""Build step of the CUDA emulation (SAFEOPS_CUDA_EMULATE): copies a CUDA source for the host
compiler, rewriting the two constructs a C++ compiler cannot take as they are:

  kernel<<<grid, block, shared, stream>>>(args);
      -> ::safeops::emu::Launch("kernel", __FILE__, __LINE__, grid, block, shared, stream)
             .run([&] { kernel(args); });   (see include/emu/launch.h)
  __shared__ T name[n];
      -> __shared__ T name[n]; ::safeops::emu::shared_declared(&name, sizeof(name));

Everything else is left as it is, line breaks included, and a #line directive names the
original file, so diagnostics, debuggers and sanitizers point at the real source lines.

    python rewrite_launches.py SOURCE OUTPUT
"""

import re
import sys

SHARED = re.compile(r"__shared__[^;{}]*?\b([A-Za-z_]\w*)\s*(\[[^;]*\])?\s*;")


def _match_back(text, end, open_ch, close_ch):
    """Index of the bracket that opens the one closing at text[end]."""
    depth = 0
    for i in range(end, -1, -1):
        if text[i] == close_ch:
            depth += 1
        elif text[i] == open_ch:
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced {open_ch}{close_ch} before offset {end}")


def _match_forward(text, start, open_ch, close_ch):
    """Index just past the bracket that closes the one opening at text[start]."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_ch:
            depth += 1
        elif text[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError(f"unbalanced {open_ch}{close_ch} after offset {start}")


def _skip_space_back(text, i):
    while i >= 0 and (text[i].isspace() or text[i] == "\\"):
        i -= 1
    return i


def _kernel_start(text, end):
    """Start of the kernel expression that ends just before text[end]: a possibly qualified
    name with template arguments, e.g. `md::forward_kernel<T, BM, decltype(tc)::value>`."""
    i = _skip_space_back(text, end - 1)
    if text[i] == ">":
        i = _skip_space_back(text, _match_back(text, i, "<", ">") - 1)
    while True:
        while i >= 0 and (text[i].isalnum() or text[i] == "_"):
            i -= 1
        if i >= 1 and text[i - 1 : i + 1] == "::":
            i -= 2
            continue
        return i + 1


def rewrite_launches(text):
    out, pos = [], 0
    while (start := text.find("<<<", pos)) >= 0:
        k0 = _kernel_start(text, start)
        cfg_end = text.index(">>>", start)
        a0 = text.index("(", cfg_end)
        if text[cfg_end + 3 : a0].strip():
            raise ValueError(f"expected the kernel's arguments after >>> at offset {cfg_end}")
        a1 = _match_forward(text, a0, "(", ")")
        kernel = text[k0:start]
        name = re.sub(r"\s+", " ", kernel.replace("\\\n", " ")).strip()
        out.append(text[pos:k0])
        out.append(
            f'::safeops::emu::Launch("{name}", __FILE__, __LINE__, {text[start + 3 : cfg_end]})'
            f".run([&] {{ {kernel}{text[a0:a1]}; }})"
        )
        pos = a1
    out.append(text[pos:])
    return "".join(out)


def mark_shared(text):
    def mark(m):
        name = m.group(1)
        return f"{m.group(0)} ::safeops::emu::shared_declared(&{name}, sizeof({name}));"

    return SHARED.sub(mark, text)


def main(source, output):
    with open(source) as f:
        text = f.read()
    body = mark_shared(rewrite_launches(text))
    with open(output, "w") as f:
        f.write(f'#line 1 "{source}"\n{body}')


if __name__ == "__main__":
    main(*sys.argv[1:])
