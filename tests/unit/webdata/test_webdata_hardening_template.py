"""``<template>`` content is inert (a browser never renders it), so extraction leaves its text
out, in both modes; trafilatura (quality mode) used to extract it. A declarative shadow root
(``<template shadowrootmode>``) is rendered by browsers and stays in quality mode."""

from __future__ import annotations

import pytest

from aistack.webdata.extract import MAX_NESTING_DEPTH, extract_page

VISIBLE = "<p>" + "Visible words of a page shown to the reader here. " * 10 + "</p>"
INERT = "Inert template words never rendered. " * 20

PAGES = {
    "in-body": f"<html><body><template><p>{INERT}</p></template>{VISIBLE}</body></html>",
    "bare-text": f"<html><body><template>{INERT}</template>{VISIBLE}</body></html>",
    "in-article": (
        "<html><body><main><article><h1>Valley</h1>"
        f"{VISIBLE}<template id='row'><p>{INERT}</p></template>{VISIBLE}"
        "</article></main></body></html>"
    ),
    "in-table": (
        f"<html><body><table><template><tr><td>{INERT}</td></tr></template>"
        f"<tr><td>{VISIBLE}</td></tr></table></body></html>"
    ),
    "nested": (
        f"<html><body><div><template><template><p>{INERT}</p></template></template></div>"
        f"{VISIBLE}</body></html>"
    ),
    # a page pruned for its nesting goes to trafilatura as the pruned tree's HTML
    "deep-page": (
        "<html><body>"
        + "<div>" * (MAX_NESTING_DEPTH + 20)
        + "x"
        + "</div>" * (MAX_NESTING_DEPTH + 20)
        + f"<template><p>{INERT}</p></template>{VISIBLE}</body></html>"
    ),
}


@pytest.mark.parametrize("mode", ["quality", "fast"])
@pytest.mark.parametrize("name", list(PAGES))
def test_template_content_is_not_extracted(name: str, mode: str) -> None:
    page = extract_page(PAGES[name], mode=mode)  # type: ignore[arg-type]
    assert "Visible words of a page" in page.text
    assert "Inert" not in page.text, page.text[:300]
    assert page.pruned == (1 if name == "deep-page" else 0)  # templates are not counted


def test_a_page_without_template_extracts_as_before() -> None:
    html = f"<html><body>{VISIBLE}</body></html>"
    for mode in ("quality", "fast"):
        text = extract_page(html, mode=mode).text  # type: ignore[arg-type]
        assert text == ("Visible words of a page shown to the reader here. " * 10).strip()


def test_a_declarative_shadow_root_is_kept_in_quality_mode() -> None:
    shadow = "Shadow root words a browser renders. " * 20
    html = (
        f"<html><body><div><template shadowrootmode='open'><p>{shadow}</p></template></div>"
        f"<template><p>{INERT}</p></template>{VISIBLE}</body></html>"
    )
    text = extract_page(html, mode="quality").text
    assert "Shadow root words" in text
    assert "Inert" not in text


@pytest.mark.parametrize("mode", ["quality", "fast"])
def test_thousands_of_templates_are_pruned_in_one_walk(mode: str) -> None:
    """Going through ``query_selector_all``'s result took time quadratic in its length: 4,000
    templates took about 35 s (8,000: 144 s), in both modes. A walk of the elements: ms."""
    import time

    body = "<div><template><p>inert secret</p></template></div>" * 4000
    html = (
        f"<html><body><article><p>{'Visible words here. ' * 20}</p></article>{body}</body></html>"
    )
    t0 = time.perf_counter()
    page = extract_page(html, mode=mode)  # type: ignore[arg-type]
    assert time.perf_counter() - t0 < 10  # a hang guard only (about 0.1 s here)
    assert "Visible words here." in page.text and "inert secret" not in page.text
