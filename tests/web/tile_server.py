"""A tile server of another origin, for the console's map settings: XYZ tiles
(``/xyz/{z}/{x}/{y}.png``) and one raster PMTiles archive (``/town.pmtiles``, served by range
requests as a bucket would), with CORS. Every tile is one green 256x256 PNG; the archive is
written here from the PMTiles v3 specification (one tile, zoom 0), not by a PMTiles library."""

from __future__ import annotations

import json
import re
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIZE = 256


class _TileServer(ThreadingHTTPServer):
    # a map asks for a screenful of tiles at once: socketserver's backlog of 5 reset some
    request_queue_size = 128


def png(rgb: tuple[int, int, int] = (120, 190, 120)) -> bytes:
    """A plain square PNG (8-bit RGB, no filter)."""
    row = b"\x00" + bytes(rgb) * SIZE
    raw = zlib.compress(row * SIZE)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", SIZE, SIZE, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def pmtiles(tile: bytes) -> bytes:
    """A PMTiles v3 archive of one PNG tile at zoom 0 (tile id 0), nothing compressed."""
    # the root directory: 1 entry; tile id deltas, run lengths, lengths, offsets (+1)
    directory = varint(1) + varint(0) + varint(1) + varint(len(tile)) + varint(0 + 1)
    metadata = json.dumps({"name": "test"}).encode()
    root_at = 127
    metadata_at = root_at + len(directory)
    tiles_at = metadata_at + len(metadata)
    e7 = 10_000_000
    header = (
        b"PMTiles"
        + bytes([3])
        + struct.pack(
            "<11Q",
            root_at,
            len(directory),
            metadata_at,
            len(metadata),
            0,  # leaf directories: none
            0,
            tiles_at,
            len(tile),
            1,  # addressed tiles
            1,  # tile entries
            1,  # tile contents
        )
        + bytes([1, 1, 1, 2, 0, 0])  # clustered; internal, tile compression none; png; z 0..0
        + struct.pack("<iiii", -180 * e7, -85 * e7, 180 * e7, 85 * e7)
        + bytes([0])
        + struct.pack("<ii", 0, 0)
    )
    assert len(header) == 127
    return header + directory + metadata + tile


class TileServer:
    def __init__(self) -> None:
        self.tile = png()
        self.archive = pmtiles(self.tile)
        self.asked: list[str] = []
        self.origin = ""


@contextmanager
def tile_server() -> Iterator[TileServer]:
    served = TileServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # (quiet)
            pass

        def cors(self) -> None:
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "*")

        def do_OPTIONS(self) -> None:
            self.send_response(204)
            self.cors()
            self.end_headers()

        def do_GET(self) -> None:
            served.asked.append(self.path)
            if re.fullmatch(r"/xyz/\d+/\d+/\d+\.png", self.path):
                self.answer(200, served.tile, "image/png")
            elif self.path == "/town.pmtiles":
                self.ranged(served.archive)
            else:
                self.answer(404, b"", "text/plain")

        def ranged(self, body: bytes) -> None:
            asked = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
            if asked is None:
                self.answer(200, body, "application/octet-stream")
                return
            first, last = int(asked[1]), min(int(asked[2]), len(body) - 1)
            self.send_response(206)
            self.cors()
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(body)}")
            self.send_header("Content-Length", str(last - first + 1))
            self.end_headers()
            self.wfile.write(body[first : last + 1])

        def answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.cors()
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _TileServer(("127.0.0.1", 0), Handler)
    served.origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="tile server", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
