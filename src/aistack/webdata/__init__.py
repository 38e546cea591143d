"""Web data: polite crawler → WARC → extract → language ID → quality filters → dedup →
BPE tokenizer → token shards, run as a resumable pipeline (local processes or Ray).

Heavy parsers (trafilatura, resiliparse, py3langid, tokenizers) are imported lazily by the
functions that need them.
"""

from aistack.webdata.crawler import CrawlConfig, crawl
from aistack.webdata.dedup import (
    MinHashConfig,
    MinHasher,
    ShingleSets,
    exact_hash,
    lsh_clusters,
    minhash_dedup,
    near_duplicates,
)
from aistack.webdata.extract import detect_language, extract_files, extract_text
from aistack.webdata.filters import FILTERS, Document, Filter
from aistack.webdata.pipeline import run_pipeline
from aistack.webdata.readers import ArchiveReader, ReadIssue, Record
from aistack.webdata.shards import read_shard, write_shard
from aistack.webdata.spec import PipelineSpec, load_spec, parse_spec

__all__ = [
    "ArchiveReader",
    "CrawlConfig",
    "Document",
    "FILTERS",
    "Filter",
    "MinHashConfig",
    "MinHasher",
    "PipelineSpec",
    "ReadIssue",
    "Record",
    "ShingleSets",
    "crawl",
    "detect_language",
    "exact_hash",
    "extract_files",
    "extract_text",
    "load_spec",
    "lsh_clusters",
    "minhash_dedup",
    "near_duplicates",
    "parse_spec",
    "read_shard",
    "run_pipeline",
    "write_shard",
]
