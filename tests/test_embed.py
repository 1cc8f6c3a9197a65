"""Embeddings: the packaged model loads offline; rows are L2-normalised float32; a bad model name is one clear line."""

from __future__ import annotations

import numpy as np
import pytest

from elicit.embed import EmbedConfig, EmbedError, embed_texts, load_encoder, normalise, resolve_model


def test_packaged_model_embeds_offline_and_normalised() -> None:
    encoder = load_encoder(EmbedConfig(batch_size=4))
    texts = ["I helped my neighbour carry groceries.", "I stole my neighbour's groceries.", "The sky is blue."]
    x = embed_texts(encoder, texts, batch_size=2, progress=False)
    assert x.dtype == np.float32 and x.shape == (3, 384)
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    # the two neighbour sentences are closer to each other than to the sky
    assert x[0] @ x[1] > x[0] @ x[2]


def test_unloadable_model_is_one_line_naming_the_fix(tmp_path) -> None:
    with pytest.raises(EmbedError, match=r"cannot load embedding model .*; set embed.model") as info:
        load_encoder(EmbedConfig(model=str(tmp_path / "no-such-model")))
    assert "\n" not in str(info.value)


def test_packaged_names_resolve_to_a_folder() -> None:
    assert resolve_model("all-MiniLM-L6-v2").endswith("model")
    assert resolve_model("some/other-model") == "some/other-model"


def test_normalise_keeps_zero_rows_finite() -> None:
    out = normalise(np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32))
    assert np.allclose(out, [[0.6, 0.8], [0.0, 0.0]])
