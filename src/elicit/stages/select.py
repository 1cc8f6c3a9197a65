"""select: choose one optimize config WITHOUT gold (held-out likelihood of the oracle's own answers, see
``elicit.optimize.select``) and copy its labels to ``labels/selected``; the rule's scores go to ``selection.json``.
The gold-best config is reported by evaluate/report only as an upper bound."""

from __future__ import annotations

import shutil
from pathlib import Path

from elicit.io import write_json
from elicit.optimize import OptimizeSection, select_config
from elicit.stages import _cli
from elicit.stages._labels import SEED_FILE, fresh_dir
from elicit.stages.optimize import load_problem


def run() -> None:
    p = _cli.parser(__doc__ or "")
    p.add_argument("--items", type=Path)
    p.add_argument("--priors", type=Path)
    p.add_argument("--tuples", type=Path)
    p.add_argument("--labels", type=Path, nargs="+", help="labels/<config> folders of all swept configs")
    p.add_argument("--out", type=Path, help="labels/selected folder")
    p.add_argument("--selection", type=Path, help="selection.json")
    args = p.parse_args()
    cfg, paths = _cli.setup(args)
    section = OptimizeSection.from_params(cfg.section("optimize"))
    folders = {Path(f).name: Path(f) for f in (args.labels or [paths.labels_dir(c) for c in section.configs])}
    with _cli.telemetry(paths.telemetry("select"), "select") as tel:
        problem, _ = load_problem(
            cfg, args.items or paths.items, args.priors or paths.priors, args.tuples or paths.tuples
        )
        seeds = list(cfg.section("base")["seeds"])
        name, scores = select_config(problem, section.configs, seeds=seeds, select=section.select)
        out = fresh_dir(args.out or paths.labels_dir("selected"))
        for f in sorted(folders[name].iterdir()):
            if SEED_FILE.match(f.name):
                shutil.copyfile(f, out / f.name)
        selection = {
            "selected": name,
            "method": section.select.method,
            "scores": {c: s["heldout_loglik"] for c, s in scores.items()},  # higher is better
            "details": scores,
            "gold_best": None,  # chosen without gold; evaluate/report name the gold-best config as an upper bound
        }
        write_json(selection, args.selection or paths.selection)
        tel.update(selected=name)


if __name__ == "__main__":
    _cli.main(run)
