"""A declarative shadow root (``<template shadowrootmode="open">``, or the older
``shadowroot``) is rendered by browsers, so its text is page text, in both extraction modes;
fast mode dropped it (lexbor keeps a template's content in a fragment of its own, which
resiliparse's text walk skips). An inert ``<template>`` is still dropped, also inside one."""

from __future__ import annotations

import pytest

from aistack.webdata.extract import MAX_NESTING_DEPTH, extract_page, extract_text

SHADOW = (
    "The shadow root holds the article: the river valley held a quiet town where people "
    "farmed wheat and barley for many generations."
)
LIGHT = "A light child of the host element, which the page also holds as text for readers."


def _page(template: str) -> str:
    return (
        "<html><head><title>t</title></head><body><main><h1>River valley</h1>"
        f'<div id="host">{template}<p>{LIGHT}</p></div></main></body></html>'
    )


@pytest.mark.parametrize("mode", ["fast", "quality"])
@pytest.mark.parametrize(
    "attr", ['shadowrootmode="open"', 'shadowrootmode="closed"', "shadowroot=open"]
)
def test_declarative_shadow_root_text_is_kept(mode: str, attr: str) -> None:
    html = _page(f"<template {attr}><article><p>{SHADOW}</p><slot></slot></article></template>")
    text = extract_text(html, mode=mode)  # type: ignore[arg-type]
    assert SHADOW in text, text
    assert LIGHT in text, text


@pytest.mark.parametrize("mode", ["fast", "quality"])
def test_a_nested_shadow_root_is_kept_and_an_inert_template_in_one_is_not(mode: str) -> None:
    inner = "An inner shadow root, attached to an element of the outer one, rendered too."
    html = _page(
        f'<template shadowrootmode="open"><article><p>{SHADOW}</p>'
        f'<section><template shadowrootmode="open"><p>{inner}</p></template></section>'
        "<template><p>Row markup for a script to clone, never shown.</p></template>"
        "</article></template>"
    )
    text = extract_text(html, mode=mode)  # type: ignore[arg-type]
    assert SHADOW in text and inner in text, text
    if mode == "fast":  # (quality mode: trafilatura's own handling of a nested template)
        assert "never shown" not in text, text


def test_an_inert_template_is_still_dropped_in_fast_mode() -> None:
    html = _page("<template><p>Row markup for a script to clone, never shown.</p></template>")
    text = extract_text(html, mode="fast")
    assert "never shown" not in text and LIGHT in text


def test_nesting_inside_a_shadow_root_counts_toward_the_depth_bound() -> None:
    deep = "<div>" * (MAX_NESTING_DEPTH + 20) + "deep text" + "</div>" * (MAX_NESTING_DEPTH + 20)
    html = _page(f'<template shadowrootmode="open"><p>{SHADOW}</p>{deep}</template>')
    page = extract_page(html, mode="fast")
    assert SHADOW in page.text and "deep text" not in page.text
    assert page.pruned >= 1
