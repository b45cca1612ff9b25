"""Which GPU code a shared library carries: reads the CUDA fatbinaries in its `.nv_fatbin`
ELF section (Python standard library only; no CUDA tools needed).

A fatbinary is a 16-byte header (magic 0xBA55ED50, version, header size, payload size) followed
by entries; each entry header starts with its kind (1 = PTX, 2 = ELF cubin), its header size
and payload size, and holds the target architecture (e.g. 90) as a 32-bit integer at byte 28.
"""

import struct

_MAGIC = 0xBA55ED50
_KIND = {1: "compute", 2: "sm"}


def _section(data, wanted):
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise ValueError("not a 64-bit ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    headers = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    names = headers[shstrndx]
    strtab = data[names[4] : names[4] + names[5]]
    for name_off, _, _, _, offset, size in headers:
        if strtab[name_off : strtab.index(b"\0", name_off)].decode() == wanted:
            return data[offset : offset + size]
    return b""


def device_code(path):
    """Sorted targets found in the library: "sm_XX" for machine code, "compute_XX" for PTX."""
    with open(path, "rb") as f:
        blob = _section(f.read(), ".nv_fatbin")
    found = set()
    off = 0
    while off + 16 <= len(blob):
        magic, _, header_size, payload = struct.unpack_from("<IHHQ", blob, off)
        if magic != _MAGIC:
            off += 8  # fatbinaries are 8-byte aligned inside the section
            continue
        entry, end = off + header_size, off + header_size + payload
        while entry + 32 <= end:
            kind, _, entry_header, size = struct.unpack_from("<HHIQ", blob, entry)
            arch = struct.unpack_from("<I", blob, entry + 28)[0]
            if kind in _KIND:
                found.add(f"{_KIND[kind]}_{arch}")
            entry += entry_header + size
        off = end
    return sorted(found, key=lambda t: (int(t.split("_")[1]), t))
