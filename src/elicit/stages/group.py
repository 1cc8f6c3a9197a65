"""group: embeddings → ``groups.parquet``: overlapping groups of ~10 with global anchors, one grouping per round."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elicit.group import GroupConfig, check_groups, make_groups
from elicit.io import write_parquet
from elicit.stages import _cli


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--embeddings", type=Path, help="embeddings.npy (default results/<run>/embeddings.npy)")
    p.add_argument("--out", type=Path, help="groups.parquet (default results/<run>/groups.parquet)")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    emb_path, out = args.embeddings or paths.embeddings, args.out or paths.groups
    group_cfg = GroupConfig.from_params(cfg.section("group"))
    rounds = int(cfg.section("base")["rounds"])
    with _cli.telemetry(paths.telemetry("group"), "group") as tel:
        embeddings = np.load(emb_path)
        groups = make_groups(embeddings, group_cfg, rounds, cfg.seed)
        check_groups(groups, len(embeddings), rounds)
        tel.update(groups=int(groups.groupby("round")["group_id"].nunique().sum()), rounds=rounds)
        write_parquet(groups, out)
    _cli.log.info("group: %d rows -> %s", len(groups), out)


if __name__ == "__main__":
    _cli.main(run)
