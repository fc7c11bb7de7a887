"""Merkle tree hashing, inclusion and consistency proofs exactly as RFC 9162 §2.1 defines them.

Short pure functions named after the RFC's steps.  Trees are never held in memory: proof
generation asks a :class:`RangeHasher` for MTH(D[start:end]) of the sub-ranges it needs, so the
same code serves an in-memory list (tests, offline verification) and the database's stored
subtree hashes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()


def hash_leaf(entry: bytes) -> bytes:
    """RFC 9162 §2.1.1: MTH({d(0)}) = SHA-256(0x00 || d(0))."""
    return hashlib.sha256(LEAF_PREFIX + entry).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    """RFC 9162 §2.1.1: SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1), where RFC 9162 splits a tree of n leaves."""
    if n < 2:
        raise ValueError("a tree of fewer than two leaves has no split point")
    return 1 << ((n - 1).bit_length() - 1)


class RangeHasher(Protocol):
    def hash_range(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for 0 <= start < end <= tree size."""
        ...


class LeafHashes:
    """A RangeHasher over leaf hashes held in memory, memoising subtree hashes."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._leaves = list(leaf_hashes)
        self._memo: dict[tuple[int, int], bytes] = {}

    @classmethod
    def of_entries(cls, entries: Sequence[bytes]) -> LeafHashes:
        return cls([hash_leaf(e) for e in entries])

    def hash_range(self, start: int, end: int) -> bytes:
        if end - start == 1:
            return self._leaves[start]
        key = (start, end)
        if key not in self._memo:
            k = split_point(end - start)
            self._memo[key] = hash_children(self.hash_range(start, start + k), self.hash_range(start + k, end))
        return self._memo[key]


def perfect_subtrees(start: int, end: int) -> list[tuple[int, int]]:
    """The aligned perfect subtrees (level, index) that MTH(D[start:end]) is built from, per RFC 9162's split."""
    n = end - start
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        return [(level, start >> level)]
    k = split_point(n)
    return perfect_subtrees(start, start + k) + perfect_subtrees(start + k, end)


class NodeRecorder:
    """A RangeHasher that only notes which stored subtrees a computation will read (hashes are placeholders)."""

    def __init__(self) -> None:
        self.needed: set[tuple[int, int]] = set()

    def hash_range(self, start: int, end: int) -> bytes:
        self.needed.update(perfect_subtrees(start, end))
        return b""


def root_hash(tree: RangeHasher, size: int) -> bytes:
    """MTH(D[0:size]); the empty tree's root is SHA-256 of the empty string."""
    return EMPTY_ROOT if size == 0 else tree.hash_range(0, size)


def inclusion_path(tree: RangeHasher, index: int, size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1: PATH(m, D[n]), generated iteratively from the root down, leaf-first order."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index < start + k:
            path.append(tree.hash_range(start + k, end))
            end = start + k
        else:
            path.append(tree.hash_range(start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(tree: RangeHasher, first: int, second: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from {first} to {second}")
    if first in (0, second):
        return []
    path: list[bytes] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            path.append(tree.hash_range(start + k, end))
            end = start + k
        else:
            path.append(tree.hash_range(start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append(tree.hash_range(start, end))
    path.reverse()
    return path


def verify_inclusion(index: int, size: int, leaf_hash: bytes, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 §2.1.3.2, step by step."""
    if index >= size or index < 0:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            r = hash_children(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, path: Sequence[bytes]) -> bool:
    """RFC 9162 §2.1.4.2, step by step; equal sizes need an empty proof and equal roots."""
    if first < 0 or first > second:
        return False
    if first == second:
        return not path and first_root == second_root
    if first == 0:
        return not path
    if not path:
        return False
    steps = list(path)
    if first & (first - 1) == 0:  # first is an exact power of two
        steps.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = steps[0]
    for c in steps[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = hash_children(c, fr), hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn, sn = fn >> 1, sn >> 1
        else:
            sr = hash_children(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0
