#!/usr/bin/env python3
"""mkquad.py OUT.png W H - an RGB PNG in four colour quadrants (red top
left, green top right, blue bottom left, black bottom right), for checking
which pixels a zoom crop holds. Standard library only."""
import struct
import sys
import zlib


def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data)))


def main():
    out, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    colours = [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (0, 0, 0)]]
    rows = []
    for y in range(h):
        row = bytearray([0])
        for x in range(w):
            row += bytes(colours[y * 2 // h][x * 2 // w])
        rows.append(bytes(row))
    png = (b"\x89PNG\r\n\x1a\n" +
           chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
           chunk(b"IDAT", zlib.compress(b"".join(rows))) +
           chunk(b"IEND", b""))
    with open(out, "wb") as f:
        f.write(png)


if __name__ == "__main__":
    main()
