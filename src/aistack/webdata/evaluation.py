"""Extraction evaluation: generated pages with known main text, and word-level F1.

Nothing can be downloaded here, so the held-out set is generated: each page has an article
(title + paragraphs from a seeded sentence generator, sometimes a list or a quote) wrapped in
realistic boilerplate — navigation, a cookie banner, a sidebar with links, related-article
teasers, share buttons, comments and a footer, in varying templates and markup styles
(semantic HTML5 or div soup). The score is bag-of-words precision / recall / F1 against the
article text, the measure used by the ScrapingHub article-extraction benchmark and by
trafilatura's own evaluation.
"""

from __future__ import annotations

import html
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_SUBJECTS = [
    "The committee",
    "A local farmer",
    "The new library",
    "Our research team",
    "The city council",
    "An old bridge",
    "The museum",
    "Every student",
    "The harbour master",
    "A small company",
    "The orchestra",
    "The weather service",
    "Her grandmother",
    "The football club",
    "This recipe",
]
_VERBS = [
    "announced",
    "described",
    "rebuilt",
    "measured",
    "questioned",
    "celebrated",
    "explained",
    "recorded",
    "improved",
    "delayed",
    "discovered",
    "published",
    "visited",
    "designed",
    "tested",
]
_OBJECTS = [
    "a plan for the northern district",
    "the results of a long study",
    "the damaged roof",
    "the price of fresh bread",
    "a history of the valley",
    "new rules for parking",
    "the oldest tree in the park",
    "a method to save water",
    "the winter timetable",
    "several letters from the war",
    "the sound of the river",
    "a festival for children",
]
_TAILS = [
    "after months of debate",
    "with help from volunteers",
    "despite the heavy rain",
    "for the first time in decades",
    "before the end of the year",
    "in front of a large crowd",
    "according to the annual report",
    "while the workers waited outside",
    "at a modest cost",
    "as many residents had hoped",
]
_NAV = [
    "Home",
    "News",
    "Sport",
    "Business",
    "Culture",
    "Travel",
    "Weather",
    "Contact",
    "About us",
    "Shop",
    "Subscribe",
    "Log in",
    "Events",
    "Jobs",
    "Podcasts",
]
_BOILER = [
    "We use cookies to improve your experience. By continuing you accept our cookie policy.",
    "Sign up for our newsletter and never miss a story.",
    "Share this article on social media",
    "Advertisement",
    "Copyright 2024 Example Media Group. All rights reserved.",
    "Privacy policy | Terms of use | Accessibility",
    "Most read this week",
    "Follow us on Facebook, Twitter and Instagram",
    "Related articles",
    "Leave a comment",
]


def _sentence(rng: random.Random) -> str:
    return (
        f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_TAILS)}."
    )


def _para(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))


@dataclass(kw_only=True, frozen=True)
class Page:
    html: str
    main_text: str


def generate_page(seed: int) -> Page:
    rng = random.Random(seed)
    title = " ".join(rng.choice(_OBJECTS).split()[:5]).capitalize()
    paras = [_para(rng) for _ in range(rng.randint(3, 8))]
    items = [_sentence(rng) for _ in range(rng.randint(3, 5))] if rng.random() < 0.4 else []
    quote = _sentence(rng) if rng.random() < 0.3 else ""
    semantic = rng.random() < 0.6
    e = html.escape
    nav = "".join(
        f'<li><a href="/{w.lower().replace(" ", "-")}">{e(w)}</a></li>' for w in rng.sample(_NAV, 8)
    )
    side = "".join(
        f'<li><a href="/story/{rng.randint(1, 9999)}">{e(_sentence(rng))}</a></li>'
        for _ in range(rng.randint(3, 6))
    )
    body = [f"<p>{e(p)}</p>" for p in paras]
    if items:
        body.insert(
            rng.randint(1, len(body)), "<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>"
        )
    if quote:
        body.insert(rng.randint(1, len(body)), f"<blockquote>{e(quote)}</blockquote>")
    comments = "".join(
        f'<div class="comment"><span class="author">user{rng.randint(1, 999)}</span>'
        f"<p>{e(_sentence(rng))}</p></div>"
        for _ in range(rng.randint(0, 3))
    )
    boiler = rng.sample(_BOILER, 5)
    if semantic:
        page = (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(title)} | Example News</title></head><body>"
            f"<header><div class='logo'>Example News</div><nav><ul>{nav}</ul></nav></header>"
            f"<div class='cookie-banner'>{e(boiler[0])}</div>"
            f"<main><article><h1>{e(title)}</h1><p class='byline'>By Staff Writer</p>{''.join(body)}</article>"
            f"<aside><h2>{e(boiler[1])}</h2><ul>{side}</ul></aside>"
            f"<section class='comments'><h3>Comments</h3>{comments}</section></main>"
            f"<footer><p>{e(boiler[2])}</p><p>{e(boiler[3])}</p><p>{e(boiler[4])}</p></footer></body></html>"
        )
    else:
        page = (
            f"<html><head><title>{e(title)}</title></head><body><div id='top'><div class='menu'><ul>{nav}</ul></div></div>"
            f"<div id='wrap'><div id='left' class='sidebar'><div class='widget'>{e(boiler[1])}<ul>{side}</ul></div></div>"
            f"<div id='content' class='post-content entry'><h1 class='title'>{e(title)}</h1>{''.join(body)}"
            f"<div class='share'>{e(boiler[0])}</div></div>"
            f"<div id='comments'>{comments}</div></div>"
            f"<div id='footer'>{e(boiler[2])} {e(boiler[3])} {e(boiler[4])}</div></body></html>"
        )
    main = "\n".join([title, *paras, *items, quote]).strip()
    return Page(html=page, main_text=main)


_TOKEN = re.compile(r"\w+", re.UNICODE)


def token_prf(predicted: str, expected: str) -> tuple[float, float, float]:
    """Bag-of-words precision, recall, F1 (lower-cased word tokens)."""
    p = Counter(_TOKEN.findall(predicted.lower()))
    g = Counter(_TOKEN.findall(expected.lower()))
    if not p and not g:
        return 1.0, 1.0, 1.0
    overlap = sum((p & g).values())
    prec = overlap / sum(p.values()) if p else 0.0
    rec = overlap / sum(g.values()) if g else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return prec, rec, f1


def repeat_corpus(sources: list[str], out_dir: str, *, n_docs: int, n_files: int = 8) -> list[str]:
    """Benchmark input: the HTML pages of ``sources`` (WARC/ARC files) written again and again
    into ``n_files`` gzip WARC files until ``n_docs`` pages exist (URLs get ``?copy=N``).
    Returns the file paths."""
    from pathlib import Path

    from aistack.webdata.crawler import WarcWriter
    from aistack.webdata.readers import iter_html

    pages = []
    for s in sources:
        for rec in iter_html(s):
            ct = rec.http_headers.get("content-type") or "text/html"
            block = (
                f"HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {len(rec.body)}\r\n\r\n".encode()
                + rec.body
            )
            pages.append((rec.url or "http://unknown/", block))
    if not pages:
        raise ValueError("no HTML pages in the sources")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    writers = [WarcWriter(out / f"bench-{i:03d}.warc.gz") for i in range(n_files)]
    for k in range(n_docs):
        url, block = pages[k % len(pages)]
        sep = "&" if "?" in url else "?"
        writers[k % n_files].write(
            "response",
            f"{url}{sep}copy={k // len(pages)}",
            block,
            content_type="application/http; msgtype=response",
            date="2024-01-01T00:00:00Z",
        )
    for w in writers:
        w.close()
    return [str(w.path) for w in writers]


class CpuMeter:
    """CPU seconds of this process and all its descendants (sampled every 50 ms with psutil,
    so workers started by a forkserver count too). On shared cores CPU time, not wall
    time, is the fair measure of docs/s per core."""

    def __init__(self) -> None:
        import threading

        import psutil

        self._psutil = psutil
        self._seen: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> None:
        me = self._psutil.Process()
        for p in [me, *me.children(recursive=True)]:
            try:
                t = p.cpu_times()
                self._seen[(p.pid, p.create_time())] = t.user + t.system
            except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                pass

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> CpuMeter:
        self._sample()
        self._start = dict(self._seen)
        self._thread.start()
        return self

    def __exit__(self, *a: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.seconds = sum(v - self._start.get(k, 0.0) for k, v in self._seen.items())


def dedup_decision_quality(
    groups: Sequence[int], similar: Iterable[tuple[int, int]], removed: Sequence[bool]
) -> dict[str, float | int]:
    """Score near-duplicate drop decisions against exact similarity (benchmarks).

    ``groups[i]``: document i's group (documents with the same shingle set share one);
    ``similar``: the pairs of distinct groups whose exact Jaccard is at or above the
    threshold (documents of one group are duplicates of each other); ``removed``: the
    decisions, in input order.

    * a dropped document is *justified* if it is similar to a document that was kept;
    * a kept document is *missed* if it is similar to an earlier kept document;
    * precision = justified / dropped, recall = justified / (justified + missed).
    """
    nbrs: dict[int, set[int]] = {}
    for a, b in similar:
        nbrs.setdefault(a, set()).add(b)
        nbrs.setdefault(b, set()).add(a)
    first_kept: dict[int, int] = {}
    for i, (g, rm) in enumerate(zip(groups, removed, strict=True)):
        if not rm and g not in first_kept:
            first_kept[g] = i
    dropped = justified = missed = 0
    for i, (g, rm) in enumerate(zip(groups, removed, strict=True)):
        near = [first_kept[h] for h in (g, *nbrs.get(g, ())) if h in first_kept]
        if rm:
            dropped += 1
            justified += bool(near)
        elif any(k < i for k in near):
            missed += 1
    return {
        "docs": len(groups),
        "dropped": dropped,
        "dropped_justified": justified,
        "kept_missed": missed,
        "precision": justified / dropped if dropped else 1.0,
        "recall": justified / (justified + missed) if justified + missed else 1.0,
    }
