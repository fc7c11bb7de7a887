"""RFC 9162 Merkle hashing and proofs: the RFC's worked example, transparency-dev's roots, and exhaustive checks."""

from __future__ import annotations

import hashlib

import pytest

from gateway.audit.merkle import (
    EMPTY_ROOT,
    LeafHashes,
    consistency_path,
    hash_children,
    hash_leaf,
    inclusion_path,
    root_hash,
    split_point,
    verify_consistency,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go (Apache-2.0): leaf inputs and the roots of trees of size 0..8.
LEAVES = [
    bytes.fromhex(h)
    for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


@pytest.mark.parametrize("size", range(9))
def test_transparency_dev_roots(size):
    assert root_hash(LeafHashes.of_entries(LEAVES[:size]), size) == ROOTS[size]
    assert ROOTS[0] == EMPTY_ROOT


def test_rfc9162_worked_example_with_seven_leaves():
    """RFC 9162 §2.1.5: the tree of d0..d6 and its named nodes a..l."""
    d = [f"d{i}".encode() for i in range(7)]
    a, b, c, dd, e, f, j = (hash_leaf(x) for x in d)
    g, h, i = hash_children(a, b), hash_children(c, dd), hash_children(e, f)
    k, ll = hash_children(g, h), hash_children(i, j)
    tree = LeafHashes.of_entries(d)
    assert root_hash(tree, 7) == hash_children(k, ll)
    assert inclusion_path(tree, 0, 7) == [b, h, ll]
    assert inclusion_path(tree, 3, 7) == [c, g, ll]
    assert inclusion_path(tree, 4, 7) == [f, j, k]
    assert inclusion_path(tree, 6, 7) == [i, k]
    assert consistency_path(tree, 3, 7) == [c, dd, g, ll]
    assert consistency_path(tree, 4, 7) == [ll]
    assert consistency_path(tree, 6, 7) == [i, j, k]


# --- a direct transcription of the RFC's recursive definitions, to compare against -------------


def _mth(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return hash_children(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = split_point(len(leaves))
    if m < k:
        return [*_path(m, leaves[:k]), _mth(leaves[k:])]
    return [*_path(m - k, leaves[k:]), _mth(leaves[:k])]


def _subproof(m: int, leaves: list[bytes], complete: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [_mth(leaves)]
    k = split_point(n)
    if m <= k:
        return [*_subproof(m, leaves[:k], complete), _mth(leaves[k:])]
    return [*_subproof(m - k, leaves[k:], False), _mth(leaves[:k])]


MAX = 64
HASHES = [hash_leaf(i.to_bytes(2, "big")) for i in range(MAX)]
TREE = LeafHashes(HASHES)
ROOT = {n: root_hash(TREE, n) for n in range(MAX + 1)}


def _tampered(path: list[bytes]) -> list[list[bytes]]:
    variants = []
    for pos in range(len(path)):
        flipped = list(path)
        flipped[pos] = bytes([path[pos][0] ^ 1]) + path[pos][1:]
        variants.append(flipped)
    variants.append([*path, path[-1] if path else HASHES[0]])
    if path:
        variants.append(path[:-1])
    return variants


@pytest.mark.parametrize("size", range(1, MAX + 1))
def test_every_inclusion_proof_up_to_64_verifies_and_every_tampering_fails(size):
    for index in range(size):
        path = inclusion_path(TREE, index, size)
        assert path == _path(index, HASHES[:size])
        assert verify_inclusion(index, size, HASHES[index], path, ROOT[size])
        for bad in _tampered(path):
            assert not verify_inclusion(index, size, HASHES[index], bad, ROOT[size])
        assert not verify_inclusion(index, size, HASHES[(index + 1) % MAX], path, ROOT[size])
        assert not verify_inclusion(index, size, HASHES[index], path, ROOT[size - 1] if size > 1 else b"x" * 32)
        if index + 1 < size:
            assert not verify_inclusion(index + 1, size, HASHES[index], path, ROOT[size])


@pytest.mark.parametrize("second", range(1, MAX + 1))
def test_every_consistency_proof_up_to_64_verifies_and_every_tampering_fails(second):
    for first in range(1, second + 1):
        path = consistency_path(TREE, first, second)
        assert path == (_subproof(first, HASHES[:second], True) if first < second else [])
        assert verify_consistency(first, second, ROOT[first], ROOT[second], path)
        if first == second:
            assert not verify_consistency(first, second, ROOT[first], hashlib.sha256(b"other").digest(), path)
            continue
        for bad in _tampered(path):
            assert not verify_consistency(first, second, ROOT[first], ROOT[second], bad)
        assert not verify_consistency(first, second, ROOT[first - 1] if first > 1 else b"y" * 32, ROOT[second], path)
        assert not verify_consistency(first, second, ROOT[first], ROOT[second - 1], path)


def test_out_of_range_requests_are_refused():
    with pytest.raises(ValueError):
        inclusion_path(TREE, 5, 5)
    with pytest.raises(ValueError):
        consistency_path(TREE, 6, 5)
    assert not verify_inclusion(5, 5, HASHES[5], [], ROOT[5])
    assert not verify_consistency(6, 5, ROOT[6], ROOT[5], [])
    assert verify_consistency(0, 5, EMPTY_ROOT, ROOT[5], [])
