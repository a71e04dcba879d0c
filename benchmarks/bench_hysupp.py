"""Time HySUPP's reference implementations on this machine, with the protocol of ``bench_unmixing.py``.

The "vs reference" table of ``bench_unmixing.py`` compares our CPU seconds with HySUPP's wall seconds taken
from the project's notes (``REFERENCE`` there: an idle 2-core machine, some other day). This script
measures the reference implementations themselves, here and now, so that both sides run on the same
machine under the same load: run it right before or after ``bench_unmixing.py`` and pass its JSON to
``bench_unmixing.py --merge ... --reference-json`` (the speed-up is then same-machine, same-threads).

HySUPP is not a dependency of simhsi and is not shipped: point ``--hysupp`` at a checkout of
BehnoodRasti/HySUPP (MIT, measured at commit cb7d633). Its CNNAEU needs scikit-learn
(``--extra-path`` adds a folder with it to ``sys.path``, after ours). The script imports HySUPP's model
modules one by one (its ``src.model.blind`` package imports MATLAB/SPAMS wrappers we cannot install), runs
each method with its default hyperparameters (= HySUPP's config files) on CPU (HySUPP's PGMSU would pick
"cuda" on a CPU-only torch: ``torch.cuda.is_available`` is tested without being called), and scores the
output with ``simhsi.metrics.unmixing`` on the bundled ground truth.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hysupp.py --hysupp /path/to/HySUPP \\
        --extra-path /path/with/sklearn --methods pgmsu,cnnaeu --seeds 0 --threads 1 --json hysupp.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import types

import numpy as np

#: our registry name → HySUPP module/class name (module ``src/model/blind/<file>.py``)
HYSUPP = {"pgmsu": ("PGMSU", "PGMSU"), "cnnaeu": ("CNNAEU", "CNNAEU"), "edaa": ("AA", "EDAA")}
DATASETS = {"samson": 3, "jasper_ridge": 4}


def load_reference_class(hysupp: str, method: str):
    """HySUPP's class for ``method``, imported without running its package ``__init__``."""
    import importlib

    blind = os.path.join(hysupp, "src", "model", "blind")
    if not os.path.isdir(blind):
        raise SystemExit(f"{hysupp}: not a HySUPP checkout (no src/model/blind)")
    if hysupp not in sys.path:
        sys.path.insert(0, hysupp)
    pkg = types.ModuleType("src.model.blind")
    pkg.__path__ = [blind]
    importlib.import_module("src.model")
    sys.modules["src.model.blind"] = pkg
    module, cls = HYSUPP[method]
    try:
        mod = importlib.import_module(f"src.model.blind.{module}")
    except ImportError as exc:  # e.g. AA.py (EDAA) imports SPAMS, CNNAEU.py scikit-learn
        raise SystemExit(f"{hysupp}: cannot import HySUPP's {module}.py ({exc}); install what it needs, "
                         "or add the folder holding it with --extra-path") from exc
    return getattr(mod, cls)


def run_one(cls, method: str, name: str, seed: int) -> dict:
    """One reference run: wall and CPU seconds of ``compute_endmembers_and_abundances`` and its scores."""
    import torch

    import simhsi.data
    from simhsi.metrics.unmixing import unmixing_scores

    ds = simhsi.data.load(name, normalize=True)
    cube = ds.cube.transpose("band", "y", "x")
    h, w = cube.sizes["y"], cube.sizes["x"]
    Y = np.asarray(cube.values, dtype=np.float64).reshape(cube.sizes["band"], h * w)  # (L, N), row-major pixels
    model = cls()
    model.device = torch.device("cpu")
    kw = {"H": h, "W": w} if method == "cnnaeu" else {}
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    E, A = model.compute_endmembers_and_abundances(Y, DATASETS[name], seed=seed, **kw)
    wall, cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu
    s = unmixing_scores(np.asarray(E), np.asarray(A), ds.endmembers.transpose("band", "endmember").values,
                        ds.abundances.values.reshape(ds.sizes["endmember"], -1))
    return {"sad": s["sad_deg"], "armse": s["armse"], "runtime_s": wall, "cpu_s": cpu}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hysupp", required=True, help="path of a BehnoodRasti/HySUPP checkout")
    ap.add_argument("--extra-path", action="append", default=[], help="folder appended to sys.path (sklearn)")
    ap.add_argument("--methods", default="pgmsu,cnnaeu", help=f"comma-separated, of {','.join(HYSUPP)}")
    ap.add_argument("--datasets", default="samson,jasper_ridge")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (set OMP_NUM_THREADS too)")
    ap.add_argument("--json", default=None, help="save the raw numbers to this JSON file")
    args = ap.parse_args(argv)
    sys.path.extend(args.extra_path)
    import torch

    torch.set_num_threads(args.threads)
    out: dict = {"reference": "HySUPP", "hysupp": os.path.abspath(args.hysupp), "threads": args.threads,
                 "when_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "load_avg": list(os.getloadavg()),
                 "accuracy": {}}
    for method in args.methods.split(","):
        cls = load_reference_class(args.hysupp, method)
        for name in args.datasets.split(","):
            runs = [run_one(cls, method, name, s) for s in args.seeds]
            r = {k: [x[k] for x in runs] for k in runs[0]}
            r["seeds"] = list(args.seeds)
            out["accuracy"].setdefault(name, {})[method] = r
            print(f"HySUPP {method} {name} seeds {args.seeds}: SAD {np.mean(r['sad']):.2f}° aRMSE "
                  f"{np.mean(r['armse']):.2f} wall {np.mean(r['runtime_s']):.1f} s CPU {np.mean(r['cpu_s']):.1f} s",
                  flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
