"""Hugging Face bridge: export a ladder run as a ``transformers`` model folder, and score any local
causal LM with lmscale's own evaluator (same prompts, same scoring).

The export holds ``config.json`` (with ``auto_map`` to the shipped model code), ``model.safetensors``
(lmscale's parameter names, float32), ``configuration_lmscale.py`` / ``modeling_lmscale.py`` (torch
+ transformers only), and the run's tokenizer as ``tokenizer.json`` with ``tokenizer_config.json``.
``AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)`` loads it."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from lmscale._io import atomic_write_text, share_mode
from lmscale.errors import InputError
from lmscale.interop import require
from lmscale.ladder_eval import load_run
from lmscale.train.shapes import swiglu_hidden

TEMPLATE = Path(__file__).with_name("hf_template")
EOT = "<|endoftext|>"


def export_run(run_dir: str | Path, to: str | Path, *, overwrite: bool = False) -> Path:
    """Write the Hugging Face folder of a finished ladder run; returns it."""
    safetensors_torch = require("safetensors.torch", "exporting to Hugging Face")

    model, _tok, record = load_run(run_dir)
    out = Path(to)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InputError(f"{out} exists and is not empty; choose another folder or pass overwrite")
    out.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    eot = _tok.token_to_id(EOT)
    config = {
        "architectures": ["LmscaleForCausalLM"],
        "model_type": "lmscale",
        "auto_map": {
            "AutoConfig": "configuration_lmscale.LmscaleConfig",
            "AutoModelForCausalLM": "modeling_lmscale.LmscaleForCausalLM",
        },
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "intermediate_size": swiglu_hidden(cfg.d_model),
        "max_position_embeddings": cfg.seq_len,
        "rope_theta": cfg.rope_base,
        "norm_eps": cfg.norm_eps,
        "n_params": cfg.n_params,
        "qk_norm_gains": cfg.qk_gains,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "tie_word_embeddings": False,
        "use_cache": False,
        "torch_dtype": "float32",
        "lmscale": {"run_id": record.run_id, "ladder": record.ladder, "row": dict(record.row)},
    }
    for name in ("configuration_lmscale.py", "modeling_lmscale.py"):
        shutil.copyfile(TEMPLATE / name, out / name)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = out / ".model.safetensors.tmp"
    safetensors_torch.save_file(state, str(tmp), metadata={"format": "pt"})
    share_mode(tmp)  # safetensors creates its file 0600: give it the umask's mode, as open() would
    tmp.replace(out / "model.safetensors")
    tok_file = record.tokenizer_at(run_dir)
    assert tok_file is not None  # load_run checked it
    shutil.copyfile(tok_file, out / "tokenizer.json")
    atomic_write_text(
        out / "tokenizer_config.json",
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": EOT,
                "eos_token": EOT,
                "unk_token": EOT,
                "pad_token": EOT,
                "model_max_length": cfg.seq_len,
                "add_bos_token": False,
                "add_eos_token": False,
                "clean_up_tokenization_spaces": False,
            },
            indent=1,
        ),
    )
    atomic_write_text(
        out / "special_tokens_map.json",
        json.dumps(dict.fromkeys(("bos_token", "eos_token", "unk_token", "pad_token"), EOT), indent=1),
    )
    atomic_write_text(out / "config.json", json.dumps(config, indent=1, default=float))
    return out


# ----------------------------------------------------------------------- any HF model, our scoring
class _Encoded(SimpleNamespace):
    ids: list[int]


@dataclass
class HFTokenizer:
    """A ``transformers`` tokenizer behind the ``encode(text).ids`` interface lmscale's scorer uses
    (no special tokens added: prompts are scored as plain text, as lmscale does)."""

    tok: Any

    def encode(self, text: str) -> _Encoded:
        return _Encoded(ids=list(self.tok(text, add_special_tokens=False)["input_ids"]))


def _hf_module(hf_model: Any, max_len: int):
    import torch

    class HFCausalLM(torch.nn.Module):
        """A ``transformers`` causal LM as the evaluator's
        :class:`~lmscale.evaluate.icl.ScoringModel`: ``tokens (B, T) → logits (B, T, V)``."""

        def __init__(self):
            super().__init__()
            self.hf = hf_model
            self.cfg = SimpleNamespace(seq_len=max_len)

        @property
        def max_length(self) -> int:
            return max_len

        @property
        def device(self):
            return next(self.hf.parameters()).device

        def logits(self, tokens):
            was_training = self.hf.training
            self.hf.eval()
            try:
                with torch.no_grad():
                    return self(tokens)
            finally:
                self.hf.train(was_training)

        def forward(self, tokens):
            return self.hf(input_ids=tokens).logits

    return HFCausalLM()


def load_hf_model(
    path: str | Path, *, device: str = "cpu", trust_remote_code: bool = False, max_len: int | None = None
):
    """(model, tokenizer) of a local ``transformers`` causal LM, ready for
    :func:`lmscale.evaluate.icl.score` (offline: no hub access)."""
    transformers = require("transformers", "scoring a Hugging Face model")
    p = Path(path)
    if not (p / "config.json").is_file():
        raise InputError(f"{p}: not a Hugging Face model folder (no config.json)")
    transformers.utils.logging.disable_progress_bar()  # lmscale shows its own progress
    for weights in sorted(p.glob("*.safetensors")):
        check_safetensors(weights)
    try:
        hf = transformers.AutoModelForCausalLM.from_pretrained(
            str(p), local_files_only=True, trust_remote_code=trust_remote_code
        )
        tok = transformers.AutoTokenizer.from_pretrained(
            str(p), local_files_only=True, trust_remote_code=trust_remote_code
        )
    except ValueError as exc:
        hint = " (an lmscale export needs --trust-remote-code)" if "trust_remote_code" in str(exc) else ""
        raise InputError(f"{p}: cannot load the model: {exc}{hint}") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot load the model: {exc}") from None
    except Exception as exc:  # safetensors raises its own type on damaged weights
        if exc.__class__.__name__ != "SafetensorError":
            raise
        raise InputError(f"{p}: cannot load the model: damaged weights ({exc})") from None
    hf = hf.to(device).eval()
    limit = max_len or getattr(hf.config, "max_position_embeddings", None) or 2048
    return _hf_module(hf, int(limit)).to(device), HFTokenizer(tok)


def check_safetensors(path: Path) -> None:
    """A ``.safetensors`` file's frame: an 8-byte header length, a JSON header within the file, and
    every tensor's byte range inside the data that follows (a truncated or all-zero file is named)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else 0
        if len(head) < 8 or n < 2 or n > min(size - 8, 100 << 20):
            raise InputError(
                f"{path}: not a safetensors file, or a truncated or zeroed one (header of {n} bytes in a "
                f"file of {size})"
            )
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: damaged safetensors header ({exc})") from None
    if not isinstance(header, dict):
        raise InputError(f"{path}: damaged safetensors header (not an object)")
    data = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data
        ):
            raise InputError(
                f"{path}: tensor {name!r} lies beyond the file's {data} data bytes (truncated or damaged)"
            )
