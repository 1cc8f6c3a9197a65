"""embed: item texts → ``embeddings.npy`` (float32, L2-normalised, row i = item i)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from elicit.embed import EmbedConfig, embed_texts, load_encoder
from elicit.io import write_npy
from elicit.stages import _cli


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path, help="items.parquet (default results/<run>/items.parquet)")
    p.add_argument("--out", type=Path, help="embeddings.npy (default results/<run>/embeddings.npy)")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    items_path, out = args.items or paths.items, args.out or paths.embeddings
    embed_cfg = EmbedConfig.from_params(cfg.section("embed"))
    with _cli.telemetry(paths.telemetry("embed"), "embed") as tel:
        texts = pd.read_parquet(items_path, columns=["item_id", "text"]).sort_values("item_id")["text"].tolist()
        encoder = load_encoder(embed_cfg)
        vectors = embed_texts(encoder, texts, embed_cfg.batch_size)
        tel.update(items=len(texts), model=embed_cfg.model, dim=int(vectors.shape[1]))
        write_npy(vectors, out)
    _cli.log.info("embed: %s embeddings -> %s", vectors.shape, out)


if __name__ == "__main__":
    _cli.main(run)
