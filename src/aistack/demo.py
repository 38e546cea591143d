"""``python -m aistack.demo`` (``make demo``): the whole stack, for real, offline, on this machine.

a. crawl a real website served locally (the Python documentation that ``pydoc`` serves for the
   installed standard library) into WARC, politely — as an aistack job;
b. run the web-data pipeline on it (extract, language ID, quality filters, dedup, BPE, shards),
   register the corpus as a dataset version, print the filter report — as an aistack job;
c. train the reference GPT with DDP on 2 processes (CPU) or the local GPUs, tracked in MLflow,
   checkpointed, registered in the model registry — as an aistack job with the corpus as input;
d. promote it through a gate, deploy it as a service, ask the OpenAI-compatible endpoint for a
   completion, and print the lineage from the crawled WARC files to that endpoint;
e. print the cost of what ran (CPU/GPU-hours, cloud vs on-premises) and the dashboard URL, and
   leave the platform running (``aistack down`` stops it).

A second run reuses what the first built: the corpus dataset version (no re-crawl, no
re-processing) and the registered model (no re-training). Ctrl-C cancels the crawl or corpus
job it waits for (a rerun starts that step over) but leaves a training job running: a rerun
follows that job instead of training a second model.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from aistack.client import Client
from aistack.settings import get_settings

console = Console()
CORPUS = "demo-corpus"
MODEL = "demo-gpt"
SERVICE = "demo-gpt"
TRAIN_STEPS = int(os.environ.get("AISTACK_DEMO_STEPS", "120"))
GATE = os.environ.get("AISTACK_DEMO_GATE", "loss<7.5")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_server() -> Client:
    c = Client()
    try:
        c.health()
        console.print(f"[green]✓[/green] platform already running at {c.url}")
        return c
    except Exception:  # noqa: BLE001
        pass
    with console.status("starting the platform (aistack up --detach)…"):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "aistack", "up", "--detach"], check=True, capture_output=True
        )
    c = Client()
    console.print(
        f"[green]✓[/green] platform started at {c.url} in {time.perf_counter() - t0:.1f} s"
    )
    return c


def run_job(
    c: Client,
    spec: dict[str, Any],
    title: str,
    *,
    timeout: float = 900,
    on_interrupt: str = "cancel",
    on_submit: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    job = c.submit(spec)
    if on_submit is not None:
        on_submit(job["id"])
    return follow_job(c, job["id"], title, timeout=timeout, on_interrupt=on_interrupt)


def follow_job(
    c: Client, job_id: str, title: str, *, timeout: float = 900, on_interrupt: str = "cancel"
) -> dict[str, Any]:
    """Wait for ``job_id`` with a live status line. On Ctrl-C, ``on_interrupt="cancel"`` cancels
    the job (the crawl and the corpus steps: a rerun starts them over); ``"keep"`` leaves it
    running and says so (the training job: a rerun follows it instead of training again)."""
    t0 = time.perf_counter()
    last = ""
    try:
        with console.status(f"{title}: job {job_id} queued") as st:
            while True:
                j = c.get_job(job_id)
                if j["state"] in ("SUCCEEDED", "FAILED", "CANCELLED", "TIMEOUT"):
                    break
                tail = c.logs(job_id)["text"].strip().splitlines()
                if tail and tail[-1] != last:
                    last = tail[-1]
                st.update(
                    f"{title}: job {job_id} {j['state']} ({time.perf_counter() - t0:.0f} s) {last[-90:]}"
                )
                if time.perf_counter() - t0 > timeout:
                    c.cancel(job_id)
                    raise SystemExit(f"{title}: job {job_id} took longer than {timeout:.0f} s")
                time.sleep(0.5)
    except KeyboardInterrupt:
        raise SystemExit(_interrupted(c, job_id, on_interrupt)) from None
    if j["state"] != "SUCCEEDED":
        console.print(c.logs(job_id)["text"][-3000:])
        raise SystemExit(f"{title}: job {job_id} {j['state']}: {j.get('failure_reason')}")
    console.print(
        f"[green]✓[/green] {title}: job {job_id} succeeded in {time.perf_counter() - t0:.1f} s"
    )
    return j


def _interrupted(c: Client, job_id: str, on_interrupt: str) -> str:
    """The one line a Ctrl-C prints (instead of a traceback): what became of the job."""
    if on_interrupt == "keep":
        return (
            f"interrupted: job {job_id} keeps running on the platform "
            f"(`.venv/bin/aistack logs {job_id} -f`); `make demo` again follows it instead of "
            f"training again, `.venv/bin/aistack cancel {job_id}` stops it"
        )
    try:
        c.cancel(job_id, reason="make demo interrupted")
    except Exception as e:  # noqa: BLE001 - say it, the user can cancel it by hand
        return (
            f"interrupted: could not cancel job {job_id} ({e}); "
            f"stop it with `.venv/bin/aistack cancel {job_id}`"
        )
    return f"interrupted: cancelled job {job_id}; `make demo` again starts this step over"


def step_corpus(c: Client, work: Path) -> str:
    from aistack.errors import NotFoundError
    from aistack.storage import Datasets

    ds = Datasets.from_settings()
    try:
        v = ds.resolve(f"{CORPUS}@latest")
        console.print(
            f"[green]✓[/green] a+b. reusing the corpus {v.ref} ({v.files} files, {v.bytes / 1e6:.2f} MB) — no re-crawl"
        )
        _print_report((v.metadata or {}).get("webdata_report"))
        return v.ref
    except NotFoundError:
        pass
    # a. crawl the Python documentation served by pydoc on 127.0.0.1
    port = _free_port()
    # pydoc's server quits when its stdin reaches EOF: keep a pipe open
    pydoc = subprocess.Popen(
        [sys.executable, "-m", "pydoc", "-n", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_http(f"http://127.0.0.1:{port}/")
        warc = work / "warc"
        run_job(
            c,
            {
                "name": "demo-crawl",
                "project": "demo",
                "command": (
                    f"aistack webdata crawl http://127.0.0.1:{port}/ --out {warc} --max-pages 150 "
                    f"--max-depth 3 --delay 0.02 --allowed-domain 127.0.0.1"
                ),
                "resources": {"cpus": 1},
                "workdir": str(work),
            },
            "a. crawl pydoc's Python documentation into WARC",
        )
    finally:
        pydoc.terminate()
    # b. the web-data pipeline, registered as a dataset version
    pipeline = work / "pipeline.yaml"
    pipeline.write_text(PIPELINE.format(warc=work / "warc", out=work / "corpus", name=CORPUS))
    run_job(
        c,
        {
            "name": "demo-corpus",
            "project": "demo",
            "command": f"aistack webdata run {pipeline} --workers 2 --fresh",
            "resources": {"cpus": 2},
            "workdir": str(work),
        },
        "b. extract → filter → dedup → tokenize → register",
    )
    v = ds.resolve(f"{CORPUS}@latest")
    console.print(f"    registered {v.ref}: {v.files} files, {v.bytes / 1e6:.2f} MB")
    _print_report((v.metadata or {}).get("webdata_report"))
    return v.ref


# API documentation is not prose: the published web-text thresholds (Gopher, C4, FineWeb) drop
# nearly every pydoc page, so the demo relaxes them here (the report shows what each dropped).
PIPELINE = """name: {name}
input: {{paths: ["{warc}"]}}
output: "{out}"
workers: 2
steps:
  - extract: {{mode: fast}}
  - language: {{languages: [en], threshold: 0.5}}
  - gopher_repetition: {{dup_line_frac: 0.5, dup_line_char_frac: 0.5, top_n_grams: {{2: 0.3, 3: 0.3, 4: 0.3}}, dup_n_grams: {{5: 0.6, 6: 0.6, 7: 0.6, 8: 0.6, 9: 0.6, 10: 0.6}}}}
  - gopher_quality: {{min_doc_words: 30, min_alpha_words_ratio: 0.4, max_symbol_word_ratio: 0.5}}
  - c4: {{min_num_sentences: 1}}
  - fineweb: {{line_punct_thr: 0.0, short_line_thr: 1.0, char_duplicates_ratio: 0.5}}
  - pii: {{emails: true, ips: true}}
  - dedup: {{exact: true, minhash: {{ngram: 5, num_hashes: 112, bands: 14, rows: 8}}}}
  - tokenize: {{vocab_size: 2048}}
  - register: {{name: {name}}}
"""


def _print_report(report: Any) -> None:
    """The web-data report attached to the corpus version: documents per step, drops per reason."""
    if not isinstance(report, dict) or not isinstance(report.get("steps"), dict):
        return
    drops: dict[str, int] = report.get("drops") or {}
    t = Table(title="web-data pipeline: documents per step (drops by reason)")
    for col in ("step", "docs in", "docs out", "dropped", "reasons"):
        t.add_column(col)
    for name, s in report["steps"].items():
        reasons = {
            k.split("/", 1)[1]: v for k, v in drops.items() if k.startswith(name + "/") and v
        }
        if name == "read":
            # what the reader skipped, by WARC record type (request, warcinfo, …), as counted
            skipped = report.get("skipped_records") or {}
            reasons = {f"{k} records (not HTML pages)": v for k, v in skipped.items() if v}
        elif name == "dedup":
            dup = report.get("duplicates") or {}
            reasons = {
                "exact duplicates": dup.get("exact_duplicates", 0),
                "near duplicates (MinHash)": dup.get("near_duplicates", 0),
            }
            reasons = {k: v for k, v in reasons.items() if v}
        t.add_row(
            name,
            str(s.get("in", "")),
            str(s.get("out", "")),
            str(s.get("in", 0) - s.get("out", 0)),
            ", ".join(f"{k} {v}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])),
        )
    console.print(t)
    console.print(
        f"    {report.get('documents_out')} documents, {report.get('tokens') or 0:,} tokens "
        f"(vocabulary {report.get('vocab_size')}, {report.get('shard_dtype')} shards); "
        "languages identified (pages): "
        + (", ".join(f"{k} {v:,}" for k, v in (report.get("languages") or {}).items()) or "-")
    )


def step_train(
    c: Client, work: Path, corpus_ref: str, on_submit: Callable[[str, str], None] | None = None
) -> dict[str, Any]:
    """Submit and follow the training job; ``on_submit(job_id, trained)`` is called once it is
    submitted, ``trained`` saying what it does ("120 steps on CPU")."""
    from aistack.storage import Datasets

    v = Datasets.from_settings().resolve(corpus_ref)
    data = work / f"data-v{v.version}"
    if not data.exists():
        Datasets.from_settings().get(corpus_ref, str(data))
    try:
        import torch

        gpus = torch.cuda.device_count()
    except Exception:  # noqa: BLE001
        gpus = 0
    res: dict[str, Any] = {"gpus": gpus, "cpus": 2} if gpus else {"cpus": 2}
    trained = f"{TRAIN_STEPS} steps on {'GPU' if gpus else 'CPU'}"
    cmd = (
        f"python -m aistack.train.run --data '{data}/shard-*.bin' --tokenizer {data}/tokenizer.json --eos-id 0 --run-name demo-gpt-v{v.version}-$AISTACK_JOB_ID "
        f"--max-steps {TRAIN_STEPS} --seq-len 64 --n-layer 2 --n-head 4 --n-embd 128 "
        f"--micro-batch-size 8 --checkpoint-every 40 --log-every 10 --mlflow --save-model"
    )
    return run_job(
        c,
        {
            "name": "demo-train",
            "project": "demo",
            "command": cmd,
            "distributed": "torch",
            "procs_per_node": max(1, gpus) if gpus else 2,
            "resources": res,
            "inputs": [corpus_ref],
            "workdir": str(work),
            "retries": 1,
        },
        f"c. train the reference GPT (DDP × {max(gpus, 2) if not gpus else gpus}, MLflow, checkpoints)",
        on_interrupt="keep",
        on_submit=None if on_submit is None else (lambda jid: on_submit(jid, trained)),
    )


def step_register(c: Client, job: dict[str, Any]) -> dict[str, Any]:
    from aistack.mlops import registry

    run_id = job.get("mlflow_run_id")
    if not run_id:
        raise SystemExit(
            "the training job has no MLflow run (is MLflow embedded? see the server log)"
        )
    mv = registry.register_from_run(
        run_id, MODEL, "model", tracking_uri=c.url + "/mlflow", token=c.token
    )
    console.print(
        f"[green]✓[/green] c. registered {MODEL} v{mv['version']} from run {run_id[:12]} (job {job['id']})"
    )
    return mv


def step_promote_serve(c: Client, mv: dict[str, Any], trained: str | None = None) -> None:
    from aistack.mlops import registry
    from aistack.serving import manager

    uri = c.url + "/mlflow"
    res = registry.promote(
        MODEL, int(mv["version"]), "production", [GATE], tracking_uri=uri, token=c.token
    )
    console.print(
        f"[green]✓[/green] d. promoted {MODEL} v{mv['version']} to production through the gate {GATE!r}"
    )
    for chk in res.to_dict().get("checks", []):
        actual = chk["actual"]
        actual = f"{actual:.4g}" if isinstance(actual, float) else actual
        console.print(
            f"    {chk['condition']}: actual {actual} → {'pass' if chk['passed'] else 'fail'}"
        )
    # the service controller and its replicas load the model from the registry
    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["MLFLOW_TRACKING_TOKEN"] = c.token or ""
    os.environ.setdefault("AISTACK_URL", c.url)
    with console.status("d. deploying the service (router + replicas placed by the scheduler)…"):
        try:
            st = manager.status(SERVICE)
            st = manager.update(SERVICE, f"{MODEL}@production")
        except Exception:  # noqa: BLE001 - not deployed yet
            st = manager.deploy(
                f"{MODEL}@production",
                name=SERVICE,
                min_replicas=1,
                max_replicas=2,
                launcher="jobs",
                project="demo",
                wait_ready_s=300,
            )
    url = st["url"]
    console.print(f"[green]✓[/green] d. service {SERVICE} at {url}")
    import httpx

    body = {
        "model": SERVICE,
        "prompt": "The Python standard library",
        "max_tokens": 32,
        "temperature": 0.8,
    }
    t0 = time.perf_counter()
    r = httpx.post(url + "/v1/completions", json=body, timeout=120)
    r.raise_for_status()
    text = " ".join(r.json()["choices"][0]["text"].split())  # pydoc pages are full of &nbsp;
    console.print(
        f"    POST {url}/v1/completions ({(time.perf_counter() - t0) * 1000:.0f} ms, a tiny model"
        f"{f' trained for {trained}' if trained else ''}): [bold]{body['prompt']}[/bold] {text}"
    )


def step_lineage(c: Client, corpus: str) -> None:
    """The corpus's lineage, upstream to the WARC files and downstream to the endpoint, as one
    line per hop kind: files → web-data run → corpus → job → run → model version → service."""
    name, _, version = corpus.partition("@")
    g = c.request("GET", f"/datasets/{name}/versions/{version}/lineage")
    edges = [(e["src"], e["dst"]) for e in g["edges"]]
    up = {d: [s for s, d2 in edges if d2 == d] for _, d in edges}
    down = {s: [d for s2, d in edges if s2 == s] for s, _ in edges}
    root = g["root"]

    def walk(start: str, nxt: dict[str, list[str]]) -> list[list[str]]:
        """The nodes ``start`` reaches, by distance (hop 1, hop 2, …)."""
        hops, seen, front = [], {start}, [start]
        while front:
            front = sorted({n for f in front for n in nxt.get(f, []) if n not in seen})
            seen.update(front)
            if front:
                hops.append(front)
        return hops

    def shown(nodes: list[str]) -> str:
        kinds = {n.partition(":")[0] for n in nodes}
        if len(nodes) > 3:  # e.g. the WARC files
            return f"{len(nodes)} {'/'.join(sorted(kinds))} nodes ({nodes[0]}, …)"
        return ", ".join(nodes)

    chain = [shown(h) for h in reversed(walk(root, up))] + [f"[bold]{root}[/bold]"]
    chain += [shown(h) for h in walk(root, down)]
    console.print("[green]✓[/green] d. lineage, from the crawl to the endpoint:")
    for i, hop in enumerate(chain):
        console.print(f"    {'→ ' if i else ''}{hop}", soft_wrap=True)


def step_cost(c: Client) -> None:
    rep = c.request("GET", "/cost/report", params={"project": "demo"})
    t = Table(title="cost of what ran (project demo)")
    # the unit once, in the header: "0.0082 h" under "CPU-hours" said it twice, and as hours
    # (a CPU-hour is one CPU for an hour: 4 CPUs for 1 h are 4 CPU-hours, not "4 h")
    for col in ("job", "name", "CPU-hours", "GPU-hours", "cost at cloud on-demand prices"):
        t.add_column(col)
    for r in rep.get("by_job", []):
        t.add_row(
            r["key"],
            _job_name(c, r["key"]),
            f"{r['cpu_hours']:.4f}",
            f"{r['gpu_hours']:.4f}",
            f"${r['cost_usd']:.5f}",
        )
    tot = rep["total"]
    t.add_row(
        "[bold]total[/bold]",
        "",
        f"{tot['cpu_hours']:.4f}",
        f"{tot['gpu_hours']:.4f}",
        f"${tot['cost_usd']:.5f}",
    )
    console.print(t)
    console.print(
        f"    cloud on-demand ${rep.get('cloud_on_demand_usd') or 0:.5f} vs on-premises ${rep.get('onprem_usd') or 0:.5f} for the same usage"
    )
    if rep.get("recommendation"):
        console.print(f"    {rep['recommendation']}")


def _job_name(c: Client, job_id: str) -> str:
    """A job's name for the cost table (the service's replica jobs are serve-demo-gpt-r1, …)."""
    try:
        return str(c.get_job(job_id)["name"])
    except Exception:  # noqa: BLE001 - a job the database no longer has
        return "?"


def _read_state(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _earlier_training_job(c: Client, state: dict[str, Any]) -> dict[str, Any] | None:
    """The training job an interrupted earlier run submitted on this corpus, if it is still
    queued, running or has succeeded (its model not registered yet); None to train anew."""
    if not state.get("job") or state.get("model_version"):
        return None
    try:
        j = c.get_job(str(state["job"]))
    except Exception:  # noqa: BLE001 - gone (another database): train anew
        return None
    if j["state"] in ("FAILED", "CANCELLED", "TIMEOUT"):
        return None
    console.print(
        f"[green]✓[/green] c. the training job {j['id']} of an earlier run is {j['state']}: "
        "following it (no second training)"
    )
    return j


def _model_exists(c: Client, version: int) -> bool:
    try:
        m = c.request("GET", f"/models/{MODEL}")
    except Exception:  # noqa: BLE001
        return False
    return any(int(v["version"]) == version for v in m.get("versions", []))


def _wait_http(url: str, timeout: float = 20) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def main() -> None:
    t0 = time.perf_counter()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    console.rule(
        "[bold]aistack demo[/bold]: crawl → corpus → train → track → register → serve → cost"
    )
    settings = get_settings()
    # the home holds the API token: create it owner-only (a 0755 home made here drew a warning
    # from the server it then starts, "was accessible to other users … changed it to 0700")
    settings.home.mkdir(mode=0o700, parents=True, exist_ok=True)
    work = settings.home / "demo"
    work.mkdir(parents=True, exist_ok=True)
    c = ensure_server()
    corpus = step_corpus(c, work)
    state_file = work / "state.json"
    state = _read_state(state_file)
    if state.get("corpus") != corpus:
        state = {}
    trained = state.get("trained")
    if state.get("model_version") and _model_exists(c, int(state["model_version"])):
        mv = {"version": state["model_version"]}
        console.print(
            f"[green]✓[/green] c. reusing {MODEL} v{mv['version']}, trained on {corpus} by job {state.get('job')} — no re-training"
        )
    else:
        job = _earlier_training_job(c, state)
        if job is not None and job["state"] != "SUCCEEDED":
            job = follow_job(
                c, job["id"], "c. the training job of an earlier run", on_interrupt="keep"
            )
        else:

            def submitted(job_id: str, what: str) -> None:
                # recorded at once: a rerun after Ctrl-C follows this job, never trains twice
                state_file.write_text(
                    json.dumps({"corpus": corpus, "job": job_id, "trained": what})
                )

            job = step_train(c, work, corpus, on_submit=submitted)
            trained = _read_state(state_file).get("trained")
        mv = step_register(c, job)
        state_file.write_text(
            json.dumps(
                {
                    "corpus": corpus,
                    "job": job["id"],
                    "model_version": mv["version"],
                    "trained": trained,
                }
            )
        )
    step_promote_serve(c, mv, trained)
    step_lineage(c, corpus)
    step_cost(c)
    console.rule(f"done in {time.perf_counter() - t0:.0f} s")
    console.print(
        f"dashboard: [bold]{c.url}/[/bold] (token: {settings.token_file}); MLflow: {c.url}/mlflow/ ; "
        f"stop everything with `.venv/bin/aistack serve delete {SERVICE}` and `.venv/bin/aistack down`"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # Ctrl-C outside a job's wait (those say what became of the job): no traceback
        console.print("interrupted: `make demo` again picks up where this run stopped")
        sys.exit(130)
