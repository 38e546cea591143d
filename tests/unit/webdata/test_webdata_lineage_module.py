"""The lineage and dataset-input code lives in aistack.webdata.lineage, registration in
aistack.webdata.registration and the output folder's rules in aistack.webdata.output; the
names stay importable from aistack.webdata.pipeline (the same objects), where other modules
and older code import them."""

from __future__ import annotations

import pytest

from aistack.webdata import lineage, output, pipeline, registration

MOVED = {
    lineage: (
        "INPUT_DATASETS",
        "DatasetInput",
        "file_node",
        "file_sha256",
        "input_lineage",
        "materialize_inputs",
        "readable_id",
        "record_input_lineage",
        "resolve_dataset_inputs",
    ),
    output: ("MARKER", "OUTPUT_ENTRIES"),
    registration: ("register_output",),
}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, names in MOVED.items() for n in names])
def test_moved_names_are_importable_from_pipeline(module: object, name: str) -> None:
    assert getattr(pipeline, name) is getattr(module, name)


def test_the_output_folder_holds_the_input_datasets_folder() -> None:
    assert lineage.INPUT_DATASETS == "input-datasets" and "input-datasets" in output.OUTPUT_ENTRIES
