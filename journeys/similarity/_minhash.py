"""MinHash signatures of journey rows, computed for all journeys at once in NumPy.

Shingles are the k-grams of a journey's steps with a start and an end marker added
(``^ a b c $`` gives ``^ab abc bc$`` for k = 3), so the first and last steps count
and every journey, even one step long, has a shingle. Each step stands for a 64-bit
symbol hashed from its event type's *name*, not its code, so a signature does not
depend on the order in which an index met its event types. A shingle is its symbols
packed polynomially into 64 bits, folded to 32 bits, and from there the scheme is
datasketch's default ``affine32`` exactly: the MurmurHash3 finalizer, then
``a_k * h + b_k`` in uint32 with the permutations of ``MinHash(num_perm, seed)``.
So a signature here equals ``MinHash(num_perm, seed, hashfunc=fold)`` updated with
the packed shingles (tested), while datasketch's per-object update would take
minutes for a million journeys.

Bands: ``num_perm / band_rows`` bands of ``band_rows`` values, each band's values
hashed to one uint32 key. Two journeys are LSH candidates when a band key is equal.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Final

import numpy as np
import numpy.typing as npt
from datasketch import MinHash

from journeys.similarity._journeys import Indices, Rows

Signatures = npt.NDArray[np.uint32]
START: Final = 0x5354415254  # "START"
END: Final = 0x454E44  # "END"
"""The symbols of the markers (an event type's symbol is a hash of its name)."""
MULTIPLIER: Final = 0x100000001B3
"""Packs a shingle's symbols polynomially (FNV-1a's prime)."""
GOLDEN: Final = 0x9E3779B97F4A7C15
_BLOCK: Final = 16_384
"""Journeys signed at a time: a block's shingle hashes stay in the CPU cache."""
_ONE_SHOT: Final = 1 << 18
"""Below this many hash values, all permutations are applied in one array operation."""


def fold(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint32]:
    """Packed shingles to 32-bit input hashes (multiplicative hashing, top 32 bits)."""
    with np.errstate(over="ignore"):
        return np.asarray((values * np.uint64(GOLDEN)) >> np.uint64(32), np.uint32)


def fmix32(values: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
    """The MurmurHash3 32-bit finalizer (datasketch's pre-mix of every input hash)."""
    with np.errstate(over="ignore"):
        mixed = values ^ (values >> np.uint32(16))
        mixed = mixed * np.uint32(0x85EBCA6B)
        mixed = mixed ^ (mixed >> np.uint32(13))
        mixed = mixed * np.uint32(0xC2B2AE35)
        return np.asarray(mixed ^ (mixed >> np.uint32(16)), np.uint32)


@lru_cache(maxsize=64)
def symbols(vocabulary: tuple[str, ...]) -> npt.NDArray[np.uint64]:
    """The symbol of each code + 1 (index 0, the padding, is 0): a hash of the name."""
    hashed = [
        int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
        for name in vocabulary
    ]
    return np.array([0, *hashed], np.uint64)


def shingles(
    rows: Rows, lengths: Indices, k: int, symbol_of: npt.NDArray[np.uint64]
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """The packed k-grams of each row (``rows x columns``) and which of them exist.

    ``symbol_of`` maps code + 1 to its symbol (``symbols``). Column 0 always exists:
    for a journey shorter than ``k - 2`` steps it is the whole journey with its
    markers (and padding), so no journey is left unsigned.
    """
    count, width = rows.shape
    extended = np.zeros((count, width + 2), np.uint64)
    extended[:, 0] = START
    extended[:, 1 : width + 1] = symbol_of[rows]
    extended[np.arange(count), lengths + 1] = END
    columns = width + 3 - k
    packed = np.zeros((count, columns), np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(k):
            packed = packed * np.uint64(MULTIPLIER) + extended[:, offset : offset + columns]
    exists = np.arange(columns)[None, :] + k <= (lengths + 2)[:, None]
    exists[:, 0] = True
    return packed, exists


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[Signatures, Signatures]:
    """datasketch's ``affine32`` permutation parameters ``(a, b)`` for these settings."""
    a, b = MinHash(num_perm=num_perm, seed=seed).permutations
    return np.asarray(a, np.uint32), np.asarray(b, np.uint32)


def signatures(
    rows: Rows,
    lengths: Indices,
    symbol_of: npt.NDArray[np.uint64],
    k: int,
    num_perm: int,
    seed: int,
) -> Signatures:
    """MinHash signatures of journey rows: ``num_perm x rows`` uint32."""
    packed, exists = shingles(rows, lengths, k, symbol_of)
    mixed = fmix32(fold(packed))
    # A missing shingle repeats the row's first one: a duplicate cannot change a minimum.
    mixed = np.where(exists, mixed, mixed[:, :1])
    a, b = permutations(num_perm, seed)
    count = len(rows)
    if count * mixed.shape[1] * num_perm <= _ONE_SHOT:
        # A query's journey: one vectorised step beats a loop over permutations.
        with np.errstate(over="ignore"):
            hashed = mixed[:, :, None] * a + b
        return np.ascontiguousarray(hashed.min(axis=1).T)
    by_column = np.ascontiguousarray(mixed.T)
    result = np.empty((num_perm, count), np.uint32)
    scratch = np.empty((by_column.shape[0], min(_BLOCK, max(count, 1))), np.uint32)
    with np.errstate(over="ignore"):
        for start in range(0, count, _BLOCK):
            stop = min(count, start + _BLOCK)
            block = by_column[:, start:stop]
            work = scratch[:, : stop - start]
            for permutation in range(num_perm):
                np.multiply(block, a[permutation], out=work)
                np.add(work, b[permutation], out=work)
                np.minimum.reduce(work, axis=0, out=result[permutation, start:stop])
    return result


def band_keys(signature: Signatures, band_rows: int) -> Signatures:
    """One uint32 key per band and journey (``bands x journeys``) from the signatures."""
    bands = signature.shape[0] // band_rows
    keys = np.array(signature[0 : bands * band_rows : band_rows], np.uint32)
    with np.errstate(over="ignore"):
        for row in range(1, band_rows):
            values = signature[row : bands * band_rows : band_rows]
            keys = fmix32(keys * np.uint32(0x01000193) + values)
    return keys
