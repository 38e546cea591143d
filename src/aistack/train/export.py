"""The trained model as files serving can load, and as an MLflow pyfunc model.

A model directory holds::

    model.pt        torch state dict (CPU tensors) of aistack.train.model.GPT
    config.json     GPTConfig as JSON
    tokenizer.json  the tokenizer file the data was made with (when the run had one)

:func:`log_model` logs that directory as an MLflow pyfunc model named ``model`` in the run
(artifact path ``model``), with :class:`GPTPyfunc` as its python model, logged as code (MLflow's
"models from code": a small file that builds it, :data:`MODEL_CODE`) rather than as a pickle.
Serving loads it with::

    m = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")      # or "models:/NAME/VERSION"
    m.predict({"prompt": ["Hello"], "max_new_tokens": 20})      # → list of generated texts
    m.predict({"tokens": [[1, 2, 3]], "max_new_tokens": 5})      # → list of token-id lists

or without MLflow: ``model, cfg, tok = load_model_dir(path)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from aistack.errors import ValidationError, require
from aistack.mlops.quiet import quiet_mlflow, without_mlflow_noise


def save_model_dir(
    model: Any, gpt_config: Any, path: str | os.PathLike[str], *, tokenizer: str | None = None
) -> Path:
    torch = require("torch", extra="train")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, out / "model.pt")
    (out / "config.json").write_text(json.dumps(gpt_config.to_dict(), indent=2))
    if tokenizer:
        if not os.path.exists(tokenizer):
            raise ValidationError(
                f"tokenizer: {tokenizer} does not exist", hint="fix the path or drop it"
            )
        shutil.copyfile(tokenizer, out / "tokenizer.json")
    return out


def load_model_dir(path: str | os.PathLike[str], device: str = "cpu") -> tuple[Any, Any, Any]:
    """(GPT in eval mode, GPTConfig, tokenizers.Tokenizer or None)."""
    torch = require("torch", extra="train")
    from aistack.train.model import GPT, GPTConfig

    p = Path(path)
    cfg = GPTConfig(**json.loads((p / "config.json").read_text()))
    model = GPT(cfg)
    model.load_state_dict(torch.load(p / "model.pt", map_location=device, weights_only=True))
    model.to(device).eval()
    tok = None
    if (p / "tokenizer.json").exists():
        tokenizers = require("tokenizers", extra="webdata")
        tok = tokenizers.Tokenizer.from_file(str(p / "tokenizer.json"))
    return model, cfg, tok


try:  # the pyfunc base class only when mlflow is installed
    from mlflow.pyfunc import PythonModel as _Base
except ImportError:  # pragma: no cover - mlflow is optional
    _Base = object  # type: ignore[assignment,misc]


# MLflow warns "Add type hints to the `predict` method" when a PythonModel subclass is defined;
# the hints are left out on purpose (see predict), so that warning is held back (only that one)
with without_mlflow_noise():

    class GPTPyfunc(_Base):  # type: ignore[misc,valid-type]
        """MLflow pyfunc wrapper: greedy (temperature 0) or sampled generation."""

        def load_context(self, context):  # type: ignore[no-untyped-def]
            self.model, self.cfg, self.tokenizer = load_model_dir(context.artifacts["model_dir"])

        # no type hints here: MLflow would read them as a (wrong) input schema
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            import torch

            data = model_input
            if hasattr(data, "to_dict") and not isinstance(data, dict):  # pandas DataFrame
                data = {k: list(v.values()) for k, v in data.to_dict().items()}
            params = {**(params or {})}
            for key in ("max_new_tokens", "temperature", "top_k"):
                if isinstance(data, dict) and key in data:
                    v = data[key]
                    params[key] = v[0] if isinstance(v, list) else v
            n_new = int(params.get("max_new_tokens", 32))
            temperature = float(params.get("temperature", 0.0))
            top_k = params.get("top_k")
            if isinstance(data, dict) and "prompt" in data:
                if self.tokenizer is None:
                    raise ValidationError(
                        "prompt: this model has no tokenizer", hint="send 'tokens'"
                    )
                prompts = data["prompt"] if isinstance(data["prompt"], list) else [data["prompt"]]
                outs = []
                for text in prompts:
                    ids = self.tokenizer.encode(str(text)).ids or [0]
                    gen = self.model.generate(
                        torch.tensor([ids]), n_new, temperature=temperature, top_k=top_k
                    )
                    outs.append(self.tokenizer.decode(gen[0].tolist()))
                return outs
            if isinstance(data, dict) and "tokens" in data:
                return [
                    self.model.generate(
                        torch.tensor([list(map(int, t))]),
                        n_new,
                        temperature=temperature,
                        top_k=top_k,
                    )[0].tolist()
                    for t in data["tokens"]
                ]
            raise ValidationError(
                "model_input: expected a 'prompt' or a 'tokens' column",
                hint="e.g. {'prompt': ['Hello']}",
            )


def log_model(
    model: Any,
    gpt_config: Any,
    *,
    tokenizer: str | None = None,
    run_id: str | None = None,
    name: str = "model",
) -> str:
    """Log the model into the active (or given) MLflow run; returns the model URI."""
    mlflow = require("mlflow", extra="mlops")
    quiet_mlflow()  # pyfunc.log_model copies the artifacts with a progress bar
    with tempfile.TemporaryDirectory(prefix="aistack-model-") as tmp:
        mdir = save_model_dir(model, gpt_config, Path(tmp) / "gpt", tokenizer=tokenizer)
        ctx = (
            mlflow.start_run(run_id=run_id)
            if run_id and (mlflow.active_run() is None or mlflow.active_run().info.run_id != run_id)
            else _null()
        )
        with ctx:
            # a models-from-code file, not a GPTPyfunc() object: MLflow cloudpickles an object
            # (and warns that loading a pickle can run arbitrary code); the file is copied into
            # the model and run at load time, so loading the model unpickles nothing
            info = mlflow.pyfunc.log_model(
                name=name,
                python_model=_write_model_code(Path(tmp)),
                artifacts={"model_dir": str(mdir)},
                pip_requirements=["torch", "aistack"],
            )
    return str(info.model_uri)


# the model as code (MLflow's "models from code"): what load_model runs to get the python model
MODEL_CODE = """\
# aistack's GPT as an MLflow pyfunc model: mlflow.pyfunc.load_model runs this file
import mlflow

from aistack.train.export import GPTPyfunc

mlflow.models.set_model(GPTPyfunc())
"""


def _write_model_code(directory: Path) -> Path:
    path = directory / "gpt_pyfunc.py"
    path.write_text(MODEL_CODE)
    return path


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
