# AI-written code (brief, section 4.1.1): written by an AI coding assistant (Claude, by Anthropic); see the report's "Use of AI tools".
"""Figures to files: matplotlib figures as deterministic SVG, digit grids as pixel-exact PNG.

SVG: fonts as paths, a fixed hash salt for element ids and no date, so the same figure gives the
same bytes. PNG: every pixel of a 28x28 digit becomes a SCALE x SCALE block (nearest neighbour),
with a GAP-pixel white line between images; nothing is interpolated.
"""
from __future__ import annotations

import hashlib
import io
import struct
import zlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from experiments.lib.contract import DigitGrid  # noqa: E402

SCALE = 4  # output pixels per MNIST pixel
GAP = 4  # white output pixels between neighbouring digits


def svg_bytes(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    return buffer.getvalue()


def grid_pixels(grid: DigitGrid) -> np.ndarray:
    """(rows, cols, 28, 28) in [0, 1] -> one uint8 image, black digits strokes on white as in print."""
    rows, cols, h, w = grid.images.shape
    cell_h, cell_w = h * SCALE + GAP, w * SCALE + GAP
    canvas = np.full((rows * cell_h - GAP, cols * cell_w - GAP), 255, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            # MNIST stores ink as 1; print it dark: 255 * (1 - ink)
            block = np.kron(1.0 - np.clip(grid.images[r, c], 0.0, 1.0), np.ones((SCALE, SCALE)))
            canvas[r * cell_h:r * cell_h + h * SCALE, c * cell_w:c * cell_w + w * SCALE] = np.round(255 * block)
    return canvas


def png_bytes(pixels: np.ndarray) -> bytes:
    """A greyscale 8-bit PNG with no metadata: the same pixels always give the same bytes."""
    height, width = pixels.shape

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def encode_figure(obj, stem: str) -> tuple[bytes, dict]:
    """One figure as file bytes and its registry record (file name ``stem`` plus the suffix of its kind, and
    the SHA-256 of the bytes, checked whenever the section is reused or rendered)."""
    if isinstance(obj, DigitGrid):
        payload = png_bytes(grid_pixels(obj))
        record = {"file": f"{stem}.png", "kind": "png", "row_labels": list(obj.row_labels),
                  "col_labels": list(obj.col_labels), "rows": int(obj.images.shape[0]), "cols": int(obj.images.shape[1])}
    else:
        payload, record = svg_bytes(obj), {"file": f"{stem}.svg", "kind": "svg"}
    return payload, {**record, "sha256": hashlib.sha256(payload).hexdigest()}
