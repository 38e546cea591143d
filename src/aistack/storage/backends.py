"""Pick an fsspec filesystem from a storage URL.

=========================  ==============================================================
URL                        backend
=========================  ==============================================================
``/abs/path``, ``rel``     local directory (``fsspec`` LocalFileSystem)
``file:///abs/path``       the same
``memory://name``          the in-process fake shipped with aistack (fsspec MemoryFS)
``s3://bucket/prefix``     S3 or any S3-compatible store through ``s3fs``; credentials
                           from the usual AWS settings (``AWS_ACCESS_KEY_ID``,
                           ``AWS_SECRET_ACCESS_KEY``, profiles ...), a custom endpoint
                           from ``AISTACK_S3_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL``)
=========================  ==============================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aistack.errors import NotSupportedError, ValidationError, require

SCHEMES = ("file", "memory", "s3")


@dataclass(frozen=True, kw_only=True)
class Backend:
    """A filesystem plus the root path (in that filesystem's own notation) of the store."""

    url: str
    scheme: str
    fs: Any
    root: str

    @property
    def is_local(self) -> bool:
        return self.scheme == "file"

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])


def split_url(url: str) -> tuple[str, str]:
    """``(scheme, path)``; a plain path is ``file``."""
    if not url or not str(url).strip():
        raise ValidationError(
            "storage URL is empty",
            hint="set AISTACK_STORAGE_URL to a directory, file:///dir, s3://bucket/prefix or memory://name",
        )
    url = str(url)
    if "://" not in url:
        return "file", str(Path(url).expanduser().resolve())
    scheme, rest = url.split("://", 1)
    scheme = scheme.lower()
    if scheme in ("s3a", "s3n"):
        scheme = "s3"
    if scheme not in SCHEMES:
        raise NotSupportedError(
            f"storage URL scheme {scheme!r} is not supported (url {url!r})",
            hint="use a local path, file://, s3://bucket/prefix or memory://name",
        )
    if scheme == "file":
        return "file", str(Path(rest).expanduser().resolve())
    rest = rest.strip("/")
    if not rest:
        raise ValidationError(
            f"storage URL {url!r} has no bucket/name",
            hint=f"write it as {scheme}://NAME[/prefix]",
        )
    return scheme, rest


def s3_options() -> dict[str, Any]:
    """s3fs keyword arguments from the environment (endpoint, region)."""
    opts: dict[str, Any] = {}
    endpoint = os.environ.get("AISTACK_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    client_kwargs: dict[str, Any] = {}
    if endpoint:
        opts["endpoint_url"] = endpoint
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        client_kwargs["region_name"] = region
    if client_kwargs:
        opts["client_kwargs"] = client_kwargs
    return opts


def open_backend(url: str, **storage_options: Any) -> Backend:
    """The filesystem and root for ``url``; heavy SDKs are imported only when used.

    ``storage_options`` are s3fs keyword arguments (an ``s3://`` URL only): a local or
    ``memory://`` store takes none, and one given is refused (it was dropped unread)."""
    scheme, path = split_url(url)
    if storage_options and scheme != "s3":
        raise ValidationError(
            f"storage options ({', '.join(sorted(storage_options))}) apply to s3:// URLs only; "
            f"{url!r} is a {'local' if scheme == 'file' else scheme} store",
            hint="leave the options out for a local or memory:// store, or use an "
            "s3://bucket/prefix URL",
        )
    if scheme == "file":
        from fsspec.implementations.local import LocalFileSystem

        fs = LocalFileSystem()
        fs.makedirs(path, exist_ok=True)
        return Backend(url=url, scheme=scheme, fs=fs, root=path)
    if scheme == "memory":
        from fsspec.implementations.memory import MemoryFileSystem

        return Backend(url=url, scheme=scheme, fs=MemoryFileSystem(), root="/" + path)
    s3fs = require("s3fs", extra="s3")
    opts = {**s3_options(), **storage_options}
    # a fresh instance per store: s3fs caches instances and listings otherwise, and the
    # object store relies on seeing other processes' writes
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **opts)
    return Backend(url=url, scheme=scheme, fs=fs, root=path)


def store_identity(url: str) -> str:
    """A stable name of the store ``url`` reaches, without credentials, recorded with each
    dataset version: ``file:///abs/path`` (symlinks resolved), ``memory://name``,
    ``s3://bucket/prefix`` (plus `` at ENDPOINT`` when a custom endpoint is set). Two URLs of
    one store give one identity as far as the URL tells (a relative path, ``file://``, a
    trailing ``/``, ``s3a://``)."""
    from urllib.parse import urlsplit, urlunsplit

    scheme, path = split_url(url)
    if scheme == "file":
        return "file://" + path
    if scheme == "memory":
        return "memory://" + path
    bucket, sep, prefix = path.partition("/")
    bucket = bucket.rpartition("@")[2]  # (s3://KEY:SECRET@bucket: never recorded)
    ident = f"s3://{bucket}{sep}{prefix.strip('/')}".rstrip("/")
    endpoint = os.environ.get("AISTACK_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        parts = urlsplit(endpoint.strip())
        host = parts.netloc.rpartition("@")[2]  # no user:password
        ident += " at " + urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    return ident
