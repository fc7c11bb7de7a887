"""The audit log as C2SP ``tlog-tiles`` (https://c2sp.org/tlog-tiles): tile paths, widths and contents.

The spec cuts the RFC 9162 Merkle tree into *tiles* of 256 hashes.  A tile at level L holds the
hashes of the perfect subtrees of height 8·L — at level 0 the leaf hashes, at level 1 the roots of
the level-0 tiles (256 leaves each), at level L the roots of 256^L leaves.  The tile at level L and
index N holds the hashes N·256 … N·256+W-1 of its level; it is *full* when W = 256 and *partial*
(the rightmost tile of a level, ``.p/<W>``) when 1 ≤ W ≤ 255.  Entry bundles
(``tile/entries/<N>``) hold the entries whose leaf hashes the level-0 tile N holds, each as a
big-endian uint16 length followed by its bytes.

Short pure functions named after the spec's concepts; nothing here touches HTTP or the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from gateway.audit.merkle import LeafHashes, RangeHasher, hash_children, split_point

TILE_WIDTH = 256  # hashes (or entries) in a full tile
TILE_HEIGHT = 8  # log2(TILE_WIDTH): a level-L tile's hashes are subtrees of height 8·L
HASH_SIZE = 32
MAX_LEVEL = 63  # tlog-tiles: <L> is a decimal integer from 0 to 63
MAX_ENTRY_BYTES = 0xFFFF  # an entry bundle's uint16 length prefix

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_ELEMENT = re.compile(r"[0-9]{3}")


class MalformedTilePath(ValueError):
    """A path that is not ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` as tlog-tiles spells them."""


@dataclass(frozen=True)
class Tile:
    """One tile (or, with ``entries``, the entry bundle of level-0 tile ``index``), of ``width`` hashes."""

    level: int
    index: int
    width: int = TILE_WIDTH
    entries: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.level <= MAX_LEVEL or self.index < 0 or not 1 <= self.width <= TILE_WIDTH:
            raise ValueError(f"no tile at level {self.level}, index {self.index}, width {self.width}")
        if self.entries and self.level != 0:
            raise ValueError("entry bundles belong to level-0 tiles")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def first(self) -> int:
        """The index, within its level, of the tile's first hash (of the bundle's first entry)."""
        return self.index * TILE_WIDTH

    @property
    def node_height(self) -> int:
        """The height in the Merkle tree of the subtrees whose hashes the tile holds."""
        return self.level * TILE_HEIGHT

    @property
    def path(self) -> str:
        """tlog-tiles: ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
        level = "entries" if self.entries else str(self.level)
        partial = "" if self.full else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{partial}"


def encode_index(n: int) -> str:
    """tlog-tiles: N in zero-padded 3-digit path elements, all but the last prefixed with ``x``.

    >>> encode_index(1234067)
    'x001/x234/067'
    """
    if n < 0:
        raise ValueError("a tile index is not negative")
    elements = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        elements.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(elements))


def parse_index(elements: Sequence[str]) -> int:
    """The inverse of :func:`encode_index`, refusing any other spelling (no ``x000`` lead, no missing ``x``)."""
    if not elements:
        raise MalformedTilePath("the tile index is missing")
    *upper, last = elements
    if not _ELEMENT.fullmatch(last) or not all(e.startswith("x") and _ELEMENT.fullmatch(e[1:]) for e in upper):
        raise MalformedTilePath("a tile index is 3-digit path elements, all but the last starting with x")
    if upper and upper[0] == "x000":
        raise MalformedTilePath("a tile index has no leading x000 element")
    n = 0
    for element in elements:
        n = n * 1000 + int(element.lstrip("x"))
    return n


def parse_tile_path(path: str) -> Tile:
    """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` (the part after the log's prefix)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise MalformedTilePath("a tile path reads tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    level_text, rest = parts[1], parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or not 1 <= int(rest[-1]) < TILE_WIDTH:
            raise MalformedTilePath("a partial tile's width is a number from 1 to 255 without leading zeros")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][: -len(".p")]]
    index = parse_index(rest)
    if level_text == "entries":
        return Tile(0, index, width, entries=True)
    if not _LEVEL.fullmatch(level_text) or int(level_text) > MAX_LEVEL:
        raise MalformedTilePath(f"the tile level is a number from 0 to {MAX_LEVEL} without leading zeros")
    return Tile(int(level_text), index, width)


def hashes_at_level(size: int, level: int) -> int:
    """How many hashes tile level L has in a tree of ``size`` leaves: its complete subtrees of 256^L leaves."""
    return size >> (level * TILE_HEIGHT)


def tile_width(size: int, level: int, index: int) -> int:
    """The width tile (L, N) has in a tree of ``size``: 256 when full, 0 when it does not exist yet."""
    return max(0, min(TILE_WIDTH, hashes_at_level(size, level) - index * TILE_WIDTH))


def tile_of(size: int, level: int, index: int) -> Tile | None:
    """Tile (L, N) as it stands in a tree of ``size`` (full or the rightmost partial), or None."""
    width = tile_width(size, level, index)
    return Tile(level, index, width) if width else None


def tiles_to_follow(old: int, new: int) -> list[Tile]:
    """Every tile, at every level, holding a hash of the tree of ``new`` leaves beyond those ``old`` already had.

    A monitor that checked the tree of ``old`` fetches these to check the tree of ``new``: each new
    full tile is bound to a hash in the level above, the rightmost tiles to the root, and the tiles
    are also the ones the root of ``old`` is made of (see :func:`subtree_tiles`)."""
    if not 0 <= old <= new:
        raise ValueError(f"cannot follow a tree from {old} to {new} leaves")
    found: list[Tile] = []
    level = 0
    while level <= MAX_LEVEL and hashes_at_level(new, level):
        count = hashes_at_level(new, level)
        first = hashes_at_level(old, level) // TILE_WIDTH
        for index in range(first, (count - 1) // TILE_WIDTH + 1):
            found.append(Tile(level, index, min(TILE_WIDTH, count - index * TILE_WIDTH)))
        level += 1
    return found


def subtree_tile(height: int, index: int) -> tuple[Tile, int, int]:
    """Where the perfect subtree (height, index) lies in the tiles: the tile, and the slice of its hashes
    that hash up to it (height 8·L + r: 2^r consecutive hashes of one level-L tile)."""
    level, extra = divmod(height, TILE_HEIGHT)
    first = index << extra
    offset = first % TILE_WIDTH
    count = 1 << extra
    return Tile(level, first // TILE_WIDTH, offset + count), offset, offset + count


def split_hashes(data: bytes, width: int) -> list[bytes]:
    """A tile's body as its ``width`` hashes; ValueError when it is not exactly that long."""
    if len(data) != width * HASH_SIZE:
        raise ValueError(f"a tile of width {width} is {width * HASH_SIZE} bytes, not {len(data)}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def tile_hashes(tree: RangeHasher, tile: Tile) -> bytes:
    """The body of ``tile`` from any RangeHasher: MTH of each of its subtrees of 256^L leaves, concatenated."""
    span = 1 << tile.node_height
    return b"".join(tree.hash_range(i * span, (i + 1) * span) for i in range(tile.first, tile.first + tile.width))


def tile_root(hashes: Sequence[bytes]) -> bytes:
    """MTH of a full tile's 256 hashes: the hash the tile above holds for it."""
    return LeafHashes(hashes).hash_range(0, len(hashes))


class TileHashes:
    """A RangeHasher over fetched tiles: each perfect subtree from the highest level that holds it.

    ``tiles`` maps (level, index) to the tile's hashes; a tile may be wider than a subtree needs
    (the tile as the log stands now serves a root of any earlier size).  A subtree whose tile is not
    there raises KeyError naming the tile."""

    def __init__(self, tiles: Mapping[tuple[int, int], Sequence[bytes]]) -> None:
        self._tiles = tiles
        self._memo: dict[tuple[int, int], bytes] = {}

    def hash_range(self, start: int, end: int) -> bytes:
        key = (start, end)
        if key not in self._memo:
            n = end - start
            if n & (n - 1) == 0 and start % n == 0:
                height = n.bit_length() - 1
                self._memo[key] = self._subtree(height, start >> height)
            else:
                k = split_point(n)
                self._memo[key] = hash_children(self.hash_range(start, start + k), self.hash_range(start + k, end))
        return self._memo[key]

    def _subtree(self, height: int, index: int) -> bytes:
        tile, low, high = subtree_tile(height, index)
        hashes = self._tiles.get((tile.level, tile.index))
        if hashes is None or len(hashes) < high:
            raise KeyError(f"{tile.path} is needed and was not fetched")
        return LeafHashes(hashes[low:high]).hash_range(0, high - low)


def encode_entry_bundle(entries: Sequence[bytes]) -> bytes:
    """tlog-tiles entry bundle: each entry as a big-endian uint16 length and its bytes."""
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY_BYTES:
            raise ValueError(f"an entry of {len(entry)} bytes does not fit an entry bundle's uint16 length")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def iter_entry_bundle(data: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("the entry bundle ends inside a length prefix")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise ValueError("the entry bundle ends inside an entry")
        yield data[offset : offset + length]
        offset += length


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """The entries of an entry bundle; ValueError when it is cut short."""
    return list(iter_entry_bundle(data))
