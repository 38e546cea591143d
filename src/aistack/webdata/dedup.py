"""De-duplication: exact (normalised text hash) and MinHash LSH near-duplicates.

MinHash uses FineWeb's setting: word 5-grams, 112 hash functions, 14 bands × 8 rows (a pair
with Jaccard similarity J becomes a candidate with probability 1 - (1 - J⁸)¹⁴: 0.92 at
J = 0.8, 0.05 at J = 0.5).

Two ways to turn LSH candidates into drop decisions (``MinHashConfig.verify``):

* ``verify=True`` (default): every candidate pair is checked — by the exact Jaccard
  similarity of the two documents' shingle-hash sets when they are given (the pipeline keeps
  them from stage 1), else by the Jaccard estimated from the signatures — and only pairs at
  or above ``threshold`` (0.8) count. Documents are then visited in input order and a document
  is dropped only if it is verified-similar to a document already kept (greedy); so no
  document is dropped through a chain of edits (A~B, B~C but A≁C keeps C), and every drop
  names the kept document it duplicates. Measured on the generated near-duplicate set of
  ``bench/bench_webdata_minhash.py``, see ``bench/results/webdata_dedup_quality.json``.
* ``verify=False``: FineWeb / datatrove behaviour: every candidate pair is an edge, clusters
  are the connected components (union-find), the first document of each is kept. Transitive
  chains make this drop pairs far below the threshold (precision 0.63 at J ≥ 0.8 on the
  same set).

Either way the result depends only on the input order, not on the number of workers.

Hashing is vectorised with numpy over all shingles of a batch of documents:

1. text is normalised (lower case, punctuation → space, digits → 0, whitespace collapsed) and
   the batch is concatenated into one byte array;
2. each word gets a 64-bit polynomial hash from prefix sums (arithmetic mod 2⁶⁴, the inverse
   powers of the odd base undo the offset of each word), mixed with splitmix64;
3. a shingle (n consecutive words) hashes as Σ word_hash[k+t]·Q^t, mixed again;
4. the shingle hash keeps the high 32 bits; hash function i is ``(a_i·x + b_i) mod 2³²``
   (a_i odd: a permutation of the 32-bit values), evaluated in uint32 (SIMD) as one
   (num_hashes × shingles) matrix per chunk; ``np.minimum.reduceat`` takes each document's
   minimum. Signatures are uint32.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aistack.errors import ValidationError, short_repr

_U64 = np.uint64
_P = 0x100000001B3  # FNV prime (odd)
_PINV = pow(_P, -1, 1 << 64)
_Q = 0x9E3779B97F4A7C15  # odd
_PUNCT = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~’‘“”«»„…–—•·¡¿、。，；：？！（）【】《》\t\n\r\x0b\x0c\xa0"
)
_TRANS = str.maketrans(_PUNCT + "123456789", " " * len(_PUNCT) + "0" * 9)
_NON_ASCII_SPACE = "\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\x85"
_TRANS_NON_ASCII = str.maketrans({c: " " for c in _PUNCT + _NON_ASCII_SPACE if ord(c) > 127})
_LUT = np.arange(256, dtype=np.uint8)
for _c in _PUNCT + " \x1c\x1d\x1e\x1f":
    if ord(_c) < 128:
        _LUT[ord(_c)] = 32
_LUT[[ord(d) for d in "123456789"]] = ord("0")


def normalize(text: str) -> str:
    """The text MinHash and exact dedup compare: lower case, punctuation → space, numbers →
    0 digit by digit, single spaces."""
    return " ".join(text.lower().translate(_TRANS).split())


def exact_hash(text: str) -> bytes:
    """16-byte digest of the normalised text (exact duplicates up to case/punctuation)."""
    _check_texts([text])
    # (a lone surrogate is hashed as its 3 bytes: it was UnicodeEncodeError)
    return hashlib.blake2b(
        normalize(text).encode("utf-8", "surrogatepass"), digest_size=16
    ).digest()


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str | bytes):
        raise ValidationError(
            "texts is one string, not a list of documents (each character would be one)",
            hint="pass a list: [text]",
            field="texts",
        )
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise ValidationError(
                f"texts[{i}] is {type(t).__name__} {short_repr(t, 60)}, not text",
                hint="pass str documents (decode bytes first, e.g. b.decode('utf-8', 'replace'))",
                field=f"texts[{i}]",
            )


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (in place on a uint64 array)."""
    with np.errstate(over="ignore"):
        x ^= x >> _U64(30)
        x *= _U64(0xBF58476D1CE4E5B9)
        x ^= x >> _U64(27)
        x *= _U64(0x94D049BB133111EB)
        x ^= x >> _U64(31)
    return x


# Upper bounds of a MinHash config, far above any published setting (FineWeb: 5-grams, 112
# hashes; Lee et al. 2022: 9,000 hashes; contamination checks: 13-grams) but below what exhausts
# memory or time: each hash function costs 4 bytes per document in the signatures (64 KiB at
# the bound) and a (num_hashes × 8192) uint32 matrix per chunk of shingles (512 MiB at the
# bound); each word of an n-gram is one pass over every shingle. (num_hashes 10**9 asked for
# 8 GB of hash coefficients before the first document.)
MINHASH_NGRAM_MAX = 1024
MINHASH_NUM_HASHES_MAX = 16384


@dataclass(kw_only=True, frozen=True)
class MinHashConfig:
    """MinHash LSH settings; ``ngram`` (1 to :data:`MINHASH_NGRAM_MAX`) and ``num_hashes``
    (1 to :data:`MINHASH_NUM_HASHES_MAX`, = ``bands × rows``) are bounded."""

    ngram: int = 5
    num_hashes: int = 112
    bands: int = 14
    rows: int = 8
    seed: int = 1
    # check each LSH candidate pair (Jaccard ≥ threshold) and keep greedily (module
    # docstring); False: FineWeb's unverified union-find clusters
    verify: bool = True
    threshold: float = 0.8

    def __post_init__(self) -> None:
        for name in ("ngram", "num_hashes", "bands", "rows", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValidationError(
                    f"minhash.{name} must be a whole number, got {short_repr(value)}",
                    hint="FineWeb uses ngram 5, num_hashes 112, bands 14, rows 8, seed 1",
                    field=f"minhash.{name}",
                )
            # (num_hashes 0 = bands 0 × rows 8 compared nothing and dropped nothing; a negative
            # pair multiplied to 112; a negative seed was numpy's ValueError)
            if value < (0 if name == "seed" else 1):
                raise ValidationError(
                    f"minhash.{name} must be ≥ {0 if name == 'seed' else 1}, got {value}",
                    hint="FineWeb uses ngram 5, num_hashes 112, bands 14, rows 8, seed 1",
                    field=f"minhash.{name}",
                )
            top = _MINHASH_MAX.get(name)
            if top is not None and int(value) > top:  # (memory and time grow with it)
                raise ValidationError(
                    f"minhash.{name} must be ≤ {top:,}, got {short_repr(value)}",
                    hint=f"FineWeb uses ngram 5, num_hashes 112 (bands 14 × rows 8); {name} "
                    f"above {top:,} would take more memory or time than any dedup needs",
                    field=f"minhash.{name}",
                )
        if not isinstance(self.verify, bool):
            raise ValidationError(
                f"minhash.verify must be true or false, got {short_repr(self.verify)}",
                field="minhash.verify",
            )
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, numbers.Real):
            raise ValidationError(
                f"minhash.threshold must be a number in (0, 1], got {short_repr(self.threshold)}",
                hint="the Jaccard similarity at which two documents are duplicates, e.g. 0.8",
                field="minhash.threshold",
            )
        if self.bands * self.rows != self.num_hashes:
            raise ValidationError(
                f"minhash: bands × rows must equal num_hashes ({self.bands} × {self.rows} != "
                f"{self.num_hashes})",
                hint="e.g. num_hashes: 112, bands: 14, rows: 8",
            )
        if self.ngram < 1:
            raise ValidationError("minhash.ngram must be ≥ 1", hint="FineWeb uses 5")
        if not 0.0 < self.threshold <= 1.0:
            raise ValidationError(
                f"minhash.threshold must be in (0, 1], got {self.threshold}",
                hint="the Jaccard similarity at which two documents are duplicates, e.g. 0.8",
                field="minhash.threshold",
            )
        low = threshold_below_lsh(self.threshold, self.bands, self.rows, self.num_hashes)
        if self.verify and low is not None:  # (a pipeline's spec refuses it: the SDK warns)
            warnings.warn(f"minhash.threshold {low}", UserWarning, stacklevel=3)


_MINHASH_MAX = {"ngram": MINHASH_NGRAM_MAX, "num_hashes": MINHASH_NUM_HASHES_MAX}


def lsh_threshold(bands: int, rows: int) -> float:
    """The Jaccard similarity from which ``bands`` × ``rows`` LSH makes a pair a candidate:
    the S-curve ``1 - (1 - J^rows)^bands`` is steepest near ``(1/bands)^(1/rows)`` (there a
    pair is a candidate with probability ≈ 0.63; 14 × 8: 0.72)."""
    return float((1.0 / bands) ** (1.0 / rows))


def candidate_probability(jaccard: float, bands: int, rows: int) -> float:
    """The probability that a pair of Jaccard similarity ``jaccard`` becomes an LSH
    candidate (so that ``verify`` checks it at all)."""
    return float(1.0 - (1.0 - jaccard**rows) ** bands)


def bands_rows_for(threshold: float, num_hashes: int) -> tuple[int, int] | None:
    """Of the bands × rows = ``num_hashes`` splits, the one whose LSH threshold is the
    highest at or below ``threshold`` (the steepest curve that still finds its pairs), or
    None when none is (``threshold`` < 1/num_hashes)."""
    best: tuple[float, int, int] | None = None
    for rows in range(1, num_hashes + 1):
        if num_hashes % rows:
            continue
        bands = num_hashes // rows
        t = lsh_threshold(bands, rows)
        if t <= threshold and (best is None or t > best[0]):
            best = (t, bands, rows)
    return None if best is None else (best[1], best[2])


def threshold_below_lsh(threshold: float, bands: int, rows: int, num_hashes: int) -> str | None:
    """A message when a verified ``threshold`` is below what ``bands`` × ``rows`` detect:
    pairs between the two are mostly never candidates, so never checked, and stay (the
    threshold would be accepted and not honoured). None when it is fine."""
    lsh = lsh_threshold(bands, rows)
    if threshold >= lsh:
        return None
    at_least = math.ceil(lsh * 1000) / 1000  # (rounded up: a threshold of it is accepted)
    p = candidate_probability(threshold, bands, rows)
    prob = f"{p:.2f}" if p >= 0.01 else "under 0.01"
    row_s = "row" if rows == 1 else "rows"
    msg = (
        f"{threshold:g} is below the Jaccard similarity that {bands} bands × {rows} {row_s} "
        f"detect, (1/bands)^(1/rows) ≈ {at_least:.3f}: a pair at {threshold:g} becomes an "
        f"LSH candidate (and is checked) with probability {prob}, so the other such "
        "duplicates are never checked and stay. "
    )
    pick = bands_rows_for(threshold, num_hashes)
    if pick is not None:
        b, r = pick
        msg += (
            f"For a threshold of {threshold:g} with num_hashes {num_hashes}, use bands: {b}, "
            f"rows: {r} (detects from {lsh_threshold(b, r):.3f}); "
        )
    else:
        msg += (
            f"No bands × rows of num_hashes {num_hashes} detects {threshold:g} (raise "
            "num_hashes: N bands × 1 row detect from 1/N); "
        )
    msg += (
        "in general choose bands × rows = num_hashes with (1/bands)^(1/rows) at or a little "
        "below the threshold (more bands lowers it, more rows raises it), or raise the "
        f"threshold to {at_least:.3f} or more"
    )
    return msg


class MinHasher:
    """Vectorised MinHash signatures (see the module docstring)."""

    def __init__(self, config: MinHashConfig | None = None, *, chunk: int = 8192) -> None:
        self.cfg = config or MinHashConfig()
        rng = np.random.Generator(np.random.PCG64(self.cfg.seed))
        self._a = rng.integers(0, 2**32, self.cfg.num_hashes, dtype=np.uint64).astype(
            np.uint32
        ) | np.uint32(1)
        self._b = rng.integers(0, 2**32, self.cfg.num_hashes, dtype=np.uint64).astype(np.uint32)
        self._chunk = chunk
        self._pow_cache = np.ones(1, dtype=np.uint64)
        self._ipow_cache = np.ones(1, dtype=np.uint64)

    def _powers(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self._pow_cache) < n:
            m = max(n, 2 * len(self._pow_cache))
            with np.errstate(over="ignore"):
                p = np.full(m, _P, dtype=np.uint64)
                p[0] = 1
                self._pow_cache = np.cumprod(p, dtype=np.uint64)
                q = np.full(m, _PINV, dtype=np.uint64)
                q[0] = 1
                self._ipow_cache = np.cumprod(q, dtype=np.uint64)
        return self._pow_cache[:n], self._ipow_cache[:n]

    def shingles(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(shingle hashes uint32, per-document start offsets into them; len = docs + 1)."""
        _check_texts(texts)
        if len(texts) == 0:
            return np.zeros(0, np.uint32), np.zeros(1, np.int64)
        # lower case per document (C calls), then one byte lookup table maps ASCII
        # punctuation and whitespace to a space and digits to 0 (non-ASCII punctuation is
        # translated first, only for documents that have non-ASCII characters)
        encs = [
            (t.lower() if t.isascii() else t.lower().translate(_TRANS_NON_ASCII)).encode(
                "utf-8", "surrogatepass"
            )  # (a lone surrogate hashes as its 3 bytes, as in exact_hash)
            for t in texts
        ]
        lens = np.fromiter(map(len, encs), dtype=np.int64, count=len(encs))
        b = _LUT[np.frombuffer(b" ".join(encs) + b" ", dtype=np.uint8)]
        n = len(b)
        is_space = b == 32
        starts = np.flatnonzero(~is_space & np.concatenate(([True], is_space[:-1])))
        ends = np.flatnonzero(~is_space & np.concatenate((is_space[1:], [True]))) + 1
        pw, ipw = self._powers(n + 1)
        with np.errstate(over="ignore"):
            terms = b.astype(np.uint64) * pw[:n]
            terms[is_space] = 0  # each reduceat segment is a word plus its trailing spaces
            wh = (np.add.reduceat(terms, starts) if len(starts) else np.zeros(0, np.uint64)) * ipw[
                starts
            ]
            wh += (ends - starts).astype(np.uint64)  # length in, so "ab"+"" != "a"+"b"
        wh = _mix(wh)
        doc_start = np.concatenate(([0], np.cumsum(lens + 1)[:-1]))
        word_doc = np.searchsorted(doc_start, starts, side="right") - 1
        words_per_doc = np.bincount(word_doc, minlength=len(texts))
        first_word = np.concatenate(([0], np.cumsum(words_per_doc)))
        k = self.cfg.ngram
        # shingle j of doc d starts at word first_word[d] + j; docs with < k words get one
        # shingle of all their words (so short texts still compare)
        n_sh = np.where(
            words_per_doc >= k, words_per_doc - k + 1, (words_per_doc > 0).astype(np.int64)
        )
        sh_start = np.repeat(first_word[:-1], n_sh) + (
            np.arange(int(n_sh.sum()))
            - np.repeat(np.concatenate(([0], np.cumsum(n_sh)[:-1])), n_sh)
        )
        sh_len = np.repeat(np.minimum(words_per_doc, k), n_sh)
        total_words = len(wh)
        acc = np.zeros(len(sh_start), dtype=np.uint64)
        qpow = _U64(1)
        with np.errstate(over="ignore"):
            for t in range(k):
                idx = sh_start + t
                valid = t < sh_len
                vals = wh[np.minimum(idx, max(total_words - 1, 0))] if total_words else acc
                acc += np.where(valid, vals * qpow, _U64(0))
                qpow = _U64((int(qpow) * _Q) & 0xFFFFFFFFFFFFFFFF)
        acc = (_mix(acc) >> _U64(32)).astype(np.uint32)
        offsets = np.concatenate(([0], np.cumsum(n_sh))).astype(np.int64)
        return acc, offsets

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), num_hashes) uint32; an empty document gets all 0xFFFFFFFF."""
        return self.signatures_of(*self.shingles(texts))

    def signatures_and_sets(self, texts: Sequence[str]) -> tuple[np.ndarray, ShingleSets]:
        """Signatures and the shingle-hash sets (for exact verification), hashing once."""
        sh, offsets = self.shingles(texts)
        return self.signatures_of(sh, offsets), ShingleSets.from_shingles(sh, offsets)

    def signatures_of(self, sh: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """Signatures from the output of :meth:`shingles`."""
        nd = len(offsets) - 1
        out = np.full((nd, self.cfg.num_hashes), np.uint32(0xFFFFFFFF), dtype=np.uint32)
        if len(sh) == 0:
            return out
        a = self._a[:, None]
        bb = self._b[:, None]
        # process whole documents per chunk of ~self._chunk shingles
        d = 0
        while d < nd:
            e = int(np.searchsorted(offsets, offsets[d] + self._chunk, side="right")) - 1
            e = min(max(e, d + 1), nd)
            lo, hi = int(offsets[d]), int(offsets[e])
            if hi > lo:
                # uint32 arithmetic wraps mod 2^32 and vectorises (SIMD); 64-bit multiplies
                # do not on x86, which made them 3-4× slower here
                h = np.multiply(a, sh[lo:hi][None, :])
                h += bb
                seg = offsets[d:e] - lo
                nonempty = offsets[d + 1 : e + 1] > offsets[d:e]
                out[d:e][nonempty] = np.minimum.reduceat(h, seg[nonempty], axis=1).T
            d = e
        return out


# --------------------------------------------------------------------------- shingle sets


@dataclass(frozen=True)
class ShingleSets:
    """Per-document sorted, de-duplicated 32-bit shingle hashes (CSR layout): document i's
    set is ``values[offsets[i]:offsets[i + 1]]``. Exact Jaccard of these sets equals the
    Jaccard of the word n-gram sets up to 32-bit hash collisions (≈ s²/2³³ for s shingles)."""

    values: np.ndarray  # uint32
    offsets: np.ndarray  # int64, len = documents + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_shingles(cls, sh: np.ndarray, offsets: np.ndarray) -> ShingleSets:
        n = len(offsets) - 1
        doc = np.repeat(np.arange(n, dtype=np.uint64), np.diff(offsets))
        keys = np.sort((doc << _U64(32)) | sh.astype(np.uint64))
        # sort + mask: several times faster than np.unique on uint64 here
        keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
        d = (keys >> _U64(32)).astype(np.int64)
        off = np.searchsorted(d, np.arange(n + 1), side="left").astype(np.int64)
        return cls(values=(keys & _U64(0xFFFFFFFF)).astype(np.uint32), offsets=off)

    @classmethod
    def concat(cls, parts: Sequence[ShingleSets]) -> ShingleSets:
        if not parts:
            return cls(values=np.zeros(0, np.uint32), offsets=np.zeros(1, np.int64))
        values = np.concatenate([p.values for p in parts])
        offs = [np.zeros(1, np.int64)]
        base = 0
        for p in parts:
            offs.append(p.offsets[1:] + base)
            base += int(p.offsets[-1])
        return cls(values=values, offsets=np.concatenate(offs))

    def take(self, idx: np.ndarray) -> ShingleSets:
        """The sets of documents ``idx``, in that order."""
        idx = np.asarray(idx, dtype=np.int64)
        starts = self.offsets[idx]
        lens = self.offsets[idx + 1] - starts
        off = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
        pos = np.repeat(starts - off[:-1], lens) + np.arange(int(off[-1]), dtype=np.int64)
        return ShingleSets(values=self.values[pos], offsets=off)

    def get(self, i: int) -> np.ndarray:
        return self.values[self.offsets[i] : self.offsets[i + 1]]

    def jaccard(self, i: int, j: int) -> float:
        a, b = self.get(i), self.get(j)
        if len(a) == 0 or len(b) == 0:
            return 1.0 if len(a) == len(b) else 0.0
        inter = len(np.intersect1d(a, b, assume_unique=True))
        return inter / (len(a) + len(b) - inter)


# --------------------------------------------------------------------------- clustering


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        p = self.parent
        root = x
        while p[root] != root:
            root = p[root]
        while p[x] != root:
            p[x], x = root, p[x]
        return int(root)

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            # the smaller index is the root: the kept document is the first in input order
            if rx < ry:
                self.parent[ry] = rx
            else:
                self.parent[rx] = ry


def _band_groups(signatures: np.ndarray, cfg: MinHashConfig) -> np.ndarray:
    """(bands, documents) int64: a bucket id unique over all bands, or -1 where the document
    is alone in its bucket or empty (empty documents never match)."""
    n = len(signatures)
    out = np.full((cfg.bands, n), -1, dtype=np.int64)
    if n < 2:
        return out
    empty = (signatures == np.uint32(0xFFFFFFFF)).all(axis=1)
    next_id = 0
    for band in range(cfg.bands):
        block = np.ascontiguousarray(signatures[:, band * cfg.rows : (band + 1) * cfg.rows])
        keys = block.view(np.dtype((np.void, block.dtype.itemsize * cfg.rows))).ravel()
        order = np.argsort(keys, kind="stable")
        sk = keys[order]
        new = np.concatenate(([True], sk[1:] != sk[:-1]))
        gid = np.cumsum(new) - 1
        sizes = np.bincount(gid)
        g = np.where(sizes[gid] > 1, gid + next_id, -1)
        out[band, order] = g
        next_id += len(sizes)
    out[:, empty] = -1
    return out


def _check_signatures(signatures: object, cfg: MinHashConfig) -> np.ndarray:
    """``signatures`` as a (documents, num_hashes) uint32 array, or an error that says what
    they are (a numpy view or axis error from inside the banding, or bands read past)."""
    sig = np.asarray(signatures)
    if sig.ndim != 2 or sig.shape[1] != cfg.num_hashes or (sig.size and sig.dtype != np.uint32):
        raise ValidationError(
            f"minhash: signatures must be a (documents, {cfg.num_hashes}) uint32 array "
            f"(num_hashes of the config), got shape {sig.shape} of {sig.dtype}",
            hint="pass MinHasher(config).signatures(texts) with the same MinHashConfig",
            field="signatures",
        )
    return sig


def lsh_clusters(signatures: np.ndarray, config: MinHashConfig | None = None) -> np.ndarray:
    """FineWeb's clustering (no verification): cluster root (smallest member index) per
    document; every LSH candidate pair is an edge, clusters are connected components."""
    cfg = config or MinHashConfig()
    signatures = _check_signatures(signatures, cfg)
    n = len(signatures)
    uf = _UnionFind(n)
    groups = _band_groups(signatures, cfg)
    for band in range(cfg.bands):
        g = groups[band]
        idx = np.flatnonzero(g >= 0)
        if not len(idx):
            continue
        # link every member to the first (smallest index) member of its bucket
        order = idx[np.argsort(g[idx], kind="stable")]
        gs = g[order]
        first_pos = np.concatenate(([True], gs[1:] != gs[:-1]))
        first = order[np.flatnonzero(first_pos)][np.cumsum(first_pos) - 1]
        for x, r in zip(order[~first_pos].tolist(), first[~first_pos].tolist(), strict=True):
            uf.union(x, r)
    return np.array([uf.find(i) for i in range(n)], dtype=np.int64)


@dataclass(kw_only=True, frozen=True)
class DedupResult:
    """``removed``: documents to drop. ``match``: for a dropped document, the kept document
    it duplicates (verified) or its cluster's first document (unverified); -1 if kept.
    ``checked``: candidate pairs whose similarity was computed."""

    removed: np.ndarray
    match: np.ndarray
    checked: int = 0


def minhash_dedup(
    signatures: np.ndarray,
    config: MinHashConfig | None = None,
    shingles: ShingleSets | None = None,
) -> DedupResult:
    """Near-duplicate decisions for documents in input order (see the module docstring).

    With ``config.verify`` a candidate pair counts when its Jaccard similarity is at least
    ``config.threshold``: exact on ``shingles`` when given (one set per signature row), else
    estimated from the signatures. A document is dropped when it is verified-similar to an
    earlier kept document (the first such one, in input order, is its ``match``)."""
    cfg = config or MinHashConfig()
    signatures = _check_signatures(signatures, cfg)
    n = len(signatures)
    if shingles is not None and len(shingles) != n:
        raise ValidationError(
            f"minhash: {len(shingles)} shingle sets for {n} signatures",
            hint="pass one shingle set per document (MinHasher.signatures_and_sets)",
        )
    if not cfg.verify:
        roots = lsh_clusters(signatures, cfg)
        removed = roots != np.arange(n)
        return DedupResult(removed=removed, match=np.where(removed, roots, -1))
    removed = np.zeros(n, dtype=bool)
    match = np.full(n, -1, dtype=np.int64)
    groups = _band_groups(signatures, cfg)
    involved = np.flatnonzero((groups >= 0).any(axis=0))
    if not len(involved):
        return DedupResult(removed=removed, match=match)
    rows_of = groups[:, involved].T.tolist()
    t = cfg.threshold
    k = cfg.num_hashes
    if shingles is not None:
        sizes = np.diff(shingles.offsets).tolist()

        def similar(i: int, j: int) -> bool:
            a, b = sizes[i], sizes[j]
            # J ≤ min/max of the set sizes: most dissimilar pairs stop here
            if a == 0 or b == 0 or min(a, b) / max(a, b) < t:
                return False
            return shingles.jaccard(i, j) >= t
    else:

        def similar(i: int, j: int) -> bool:
            return int(np.count_nonzero(signatures[i] == signatures[j])) / k >= t

    kept_in: dict[int, list[int]] = {}
    checked = 0
    for j, row in zip(involved.tolist(), rows_of, strict=True):
        cands: set[int] = set()
        for g in row:
            if g >= 0:
                lst = kept_in.get(g)
                if lst:
                    cands.update(lst)
        m = -1
        for c in sorted(cands):
            checked += 1
            if similar(c, j):
                m = c
                break
        if m >= 0:
            removed[j] = True
            match[j] = m
        else:
            for g in row:
                if g >= 0:
                    kept_in.setdefault(g, []).append(j)
    return DedupResult(removed=removed, match=match, checked=checked)


def near_duplicates(
    signatures: np.ndarray,
    config: MinHashConfig | None = None,
    shingles: ShingleSets | None = None,
) -> np.ndarray:
    """Boolean mask of documents to drop (see :func:`minhash_dedup`)."""
    return minhash_dedup(signatures, config, shingles).removed


def exact_duplicates(hashes: Sequence[bytes]) -> np.ndarray:
    """Boolean mask: True for every repeat of an earlier hash."""
    seen: set[bytes] = set()
    out = np.zeros(len(hashes), dtype=bool)
    for i, h in enumerate(hashes):
        if h in seen:
            out[i] = True
        else:
            seen.add(h)
    return out


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    """Exact Jaccard similarity of word n-gram sets (same normalisation as MinHash)."""

    def grams(t: str) -> set[tuple[str, ...]]:
        w = normalize(t).split()
        if len(w) < ngram:
            return {tuple(w)} if w else set()
        return {tuple(w[i : i + ngram]) for i in range(len(w) - ngram + 1)}

    ga, gb = grams(a), grams(b)
    if not ga and not gb:
        return 1.0
    return len(ga & gb) / len(ga | gb)
