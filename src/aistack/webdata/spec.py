"""The pipeline spec: what ``aistack webdata run pipeline.yaml`` reads.

Example (``examples/webdata/pipeline.yaml``)::

    name: sample-corpus
    input:
      paths: [../../../shared/data/warc/samples]   # files or directories, relative to this file
      format: auto                                  # auto | warc | wet
    output: out/sample-corpus
    workers: 2
    steps:
      - extract: {mode: quality}
      - language: {languages: [en], threshold: 0.65}
      - gopher_repetition: {}
      - gopher_quality: {}                       # alpha_denominator: words (the paper) | tokens (datatrove)
      - c4: {}
      - fineweb: {}
      - url_blocklist: {domains: [example.com]}
      - pii: {}
      - dedup: {exact: true, minhash: {ngram: 5, bands: 14, rows: 8, threshold: 0.8}}
      - tokenize: {vocab_size: 8192}
      - register: {name: sample-corpus}          # dataset/: shards (without tokenize: the text)

``input`` names local files and folders (``paths``), dataset versions (``dataset``), or
both::

    input:
      dataset: raw-crawl@v3          # or a list; NAME, NAME@TAG or NAME@latest are pinned
      format: auto                   # to the version they name when the run starts

A dataset version is written as a job's ``inputs:`` are (``NAME@vN``; see
``aistack data log NAME``). Its files are read through the output folder's
``input-datasets/NAME@vN/``: on a local store a file kept as one object is a hard link to it
(not copied), and a larger one the store cut into chunks is a small reference that the
readers open in the store, also not copied (see
:func:`aistack.webdata.lineage.materialize_inputs`). The registered version's lineage
starts at ``dataset:NAME@vN`` rather than at one node per file. The run references the
version (``webdata:…``, as a job does its ``inputs:``), so ``aistack data rm`` refuses to
delete it under the run, and afterwards until the reference is dropped (``aistack data
unref``).

A run over an output of the same pipeline and input resumes it, unless the output was made
by other code (aistack's version or the pipeline's code version,
``aistack.webdata.pipeline.PIPELINE_CODE_VERSION``): then it is computed again (report.json's
``recomputed`` says why).

Steps run in the order listed. Document steps (``extract``, ``language`` and the filters)
come first, then ``dedup``, ``tokenize`` and ``register`` (each at most once, in this order).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError

from aistack.errors import ValidationError
from aistack.webdata.dedup import (
    MINHASH_NGRAM_MAX,
    MINHASH_NUM_HASHES_MAX,
    threshold_below_lsh,
)
from aistack.webdata.filters import FILTERS


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExtractStep(_M):
    mode: Literal["quality", "fast"] = "quality"
    min_chars: int = Field(1, ge=0, description="drop pages whose main text is shorter")


class MinHashStep(_M):
    ngram: int = Field(
        5, ge=1, le=MINHASH_NGRAM_MAX, description="words per shingle (at most 1,024)"
    )
    num_hashes: int = Field(
        112,
        ge=1,
        le=MINHASH_NUM_HASHES_MAX,
        description="hash functions, = bands × rows (at most 16,384: 4 bytes each per document)",
    )
    bands: int = Field(14, ge=1)
    rows: int = Field(8, ge=1)
    seed: int = Field(1, ge=0)
    verify: bool = Field(
        True,
        description="check LSH candidates by exact Jaccard, drop only docs similar to a kept "
        "doc (false: FineWeb's unverified union-find clusters)",
    )
    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard of a duplicate pair")

    @model_validator(mode="after")
    def _check(self) -> MinHashStep:
        if self.bands * self.rows != self.num_hashes:
            raise ValueError(
                f"bands × rows must equal num_hashes ({self.bands} × {self.rows} != {self.num_hashes})"
            )
        if not self.verify and "threshold" in self.model_fields_set:
            # (it would be accepted and ignored: unverified clusters are LSH's alone)
            raise ValueError(
                f"threshold ({self.threshold}) is used only with verify: true (it is the "
                "Jaccard each candidate pair is checked against); verify: false drops every "
                "LSH candidate unchecked, tuned by bands and rows: remove threshold, or set "
                "verify: true"
            )
        if self.verify:  # (accepted, it was not honoured: most such pairs were never checked)
            low = threshold_below_lsh(self.threshold, self.bands, self.rows, self.num_hashes)
            if low is not None:
                given = "" if "threshold" in self.model_fields_set else " (the default)"
                raise ValueError(f"threshold {low.replace(' ', f'{given} ', 1)}")
        return self


class DedupStep(_M):
    exact: bool = True
    minhash: MinHashStep | None = Field(default_factory=lambda: MinHashStep.model_validate({}))


class TokenizeStep(_M):
    tokenizer_file: str | None = None
    vocab_size: int = Field(8192, ge=300, le=1 << 24)
    min_frequency: int = Field(2, ge=1, le=2**32 - 1)
    train_docs: int | None = Field(None, ge=1, description="train on the first N kept docs")

    @model_validator(mode="after")
    def _check(self) -> TokenizeStep:
        given = [
            k for k in ("vocab_size", "min_frequency", "train_docs") if k in self.model_fields_set
        ]
        if self.tokenizer_file and given:
            # (they would be accepted and ignored: the file's tokenizer is used as it is)
            raise ValueError(
                f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} for training a "
                "tokenizer; with tokenizer_file its own vocabulary is used as it is: remove "
                f"{', '.join(given)}, or remove tokenizer_file to train one"
            )
        return self


class RegisterStep(_M):
    name: str = Field(min_length=1)
    message: str | None = None

    @field_validator("name")
    @classmethod
    def _dataset_name(cls, v: str) -> str:
        # the dataset catalog's rule (aistack.storage.refs.check_name), checked when the spec
        # is read: the whole pipeline used to run before the register step refused the name
        from aistack.storage.refs import NAME_RE

        if not NAME_RE.match(v):
            raise ValueError(
                f"{v!r} is not a valid dataset name: use 1-128 letters, digits, '.', '_' or "
                "'-', starting with a letter or digit"
            )
        return v


class InputSpec(_M):
    paths: list[str] = Field(
        default_factory=list, description="files or folders, relative to the pipeline file"
    )
    dataset: list[str] = Field(
        default_factory=list,
        description="dataset versions to read, NAME@vN (one or a list; NAME, NAME@TAG and "
        "NAME@latest are pinned when the run starts), as in a job's inputs:",
    )
    format: Literal["auto", "warc", "wet"] = "auto"

    @field_validator("dataset", mode="before")
    @classmethod
    def _one_or_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("dataset")
    @classmethod
    def _refs(cls, v: list[str]) -> list[str]:
        if not v:
            return v
        # (imported here: a spec without datasets does not load the storage layer)
        from aistack.storage.refs import parse_ref

        out = []
        for ref in v:
            try:
                parse_ref(ref)
            except ValidationError as exc:
                raise ValueError(
                    f"{exc.message}; write NAME@vN, e.g. raw-crawl@v3 (`aistack data ls` lists "
                    "the datasets, `aistack data log NAME` their versions)"
                ) from None
            out.append(ref.strip())
        return out

    @model_validator(mode="after")
    def _something(self) -> InputSpec:
        if not self.paths and not self.dataset:
            raise ValueError(
                "give paths (local files or folders) or dataset (a dataset version, e.g. "
                "dataset: raw-crawl@v3), or both"
            )
        return self


class PipelineSpec(_M):
    name: str = "corpus"
    input: InputSpec
    output: str
    workers: int = Field(1, ge=1, le=512)
    executor: Literal["local", "ray"] = "local"
    steps: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("steps", mode="before")
    @classmethod
    def _steps(cls, v: Any) -> Any:
        if not isinstance(v, list):
            raise ValueError("steps must be a list of single-key mappings like '- extract: {}'")
        out = []
        for i, item in enumerate(v):
            if isinstance(item, str):
                item = {item: {}}
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError(f"steps[{i}] must be one mapping like '- c4: {{}}', got {item!r}")
            ((k, params),) = item.items()
            out.append({k: params or {}})
        return out

    @model_validator(mode="after")
    def _validate_steps(self) -> PipelineSpec:
        self.parsed_steps()
        return self

    def parsed_steps(self) -> list[tuple[str, BaseModel]]:
        """[(kind, params model)] with each step's parameters validated."""
        out: list[tuple[str, BaseModel]] = []
        later = {"dedup": 1, "tokenize": 2, "register": 3}
        stage = 0
        for i, item in enumerate(self.steps):
            ((kind, params),) = item.items()
            model: type[BaseModel]
            if kind == "extract":
                model = ExtractStep
                if i != 0:
                    raise ValueError(f"steps[{i}]: extract must be the first step")
            elif kind in FILTERS:
                model = FILTERS[kind].Params
            elif kind == "dedup":
                model = DedupStep
            elif kind == "tokenize":
                model = TokenizeStep
            elif kind == "register":
                model = RegisterStep
            else:
                known = ["extract", *FILTERS, "dedup", "tokenize", "register"]
                raise ValueError(
                    f"steps[{i}]: unknown step {kind!r}; known steps: {', '.join(known)}"
                )
            s = later.get(kind, 0)
            if s < stage or (s and s == stage):
                raise ValueError(
                    f"steps[{i}]: {kind} is out of order (document steps, then dedup, tokenize, register; each once)"
                )
            stage = max(stage, s)
            try:
                out.append((kind, model.model_validate(params)))
            except PydanticValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                msg = err["msg"].removeprefix("Value error, ")
                raise ValueError(f"steps[{i}].{kind}{'.' + loc if loc else ''}: {msg}") from None
        return out

    def step(self, kind: str) -> BaseModel | None:
        for k, p in self.parsed_steps():
            if k == kind:
                return p
        return None


def load_spec(path: str | Path, **overrides: Any) -> tuple[PipelineSpec, Path]:
    """Read a pipeline YAML; relative paths in it are relative to the YAML file's folder.
    Returns (spec, base directory)."""
    p = Path(path)
    if p.is_dir():
        raise ValidationError(
            f"pipeline file {str(p)!r} is a folder",
            hint="pass the path of a pipeline YAML, e.g. examples/webdata/pipeline.yaml",
        )
    if not p.is_file():
        raise ValidationError(
            f"pipeline file {str(p)!r} not found", hint="pass the path of a pipeline YAML"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"pipeline file {str(p)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} "
            f"at offset {exc.start})",
            hint="save it as UTF-8 (e.g. iconv -f latin1 -t utf-8), or check that it is the "
            "pipeline YAML and not another file",
        ) from None
    except OSError as exc:
        raise ValidationError(
            f"pipeline file {str(p)!r} cannot be read: {exc.strerror or exc}",
            hint="check its permissions",
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValidationError(f"{p}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"{p}: the top level must be a mapping with input, output and steps")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_spec(data, source=str(p)), p.resolve().parent


def parse_spec(data: dict[str, Any], *, source: str = "pipeline") -> PipelineSpec:
    try:
        return PipelineSpec.model_validate(data)
    except PydanticValidationError as exc:
        msgs = []
        for err in exc.errors():
            loc = ".".join(str(x) for x in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            msgs.append(f"{loc}: {msg}" if loc else msg)
        raise ValidationError(
            f"{source}: " + "; ".join(msgs),
            hint="fix the named field (see examples/webdata/pipeline.yaml)",
        ) from None
