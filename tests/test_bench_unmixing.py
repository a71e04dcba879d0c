"""Helpers of benchmarks/bench_unmixing.py and benchmarks/bench_hysupp.py (reference timing harness)."""

import json
import sys

import pytest
from conftest import load_benchmark


def test_measured_reference_table_divides_cpu_seconds_and_judges_against_the_anchor(capsys):
    bench = load_benchmark("bench_unmixing")
    acc = {"samson": {"pgmsu": {"sad": [5.0, 6.0], "armse": [7.0, 8.0], "runtime_s": [11.0, 13.0],
                                "cpu_s": [10.0, 10.0]},
                      "vca-fcls": {"sad": [5.0], "armse": [9.0], "runtime_s": [0.1], "cpu_s": [0.1]}}}
    ref = {"samson": {"pgmsu": {"sad": [4.7], "armse": [11.0], "runtime_s": [81.0], "cpu_s": [80.0]}}}
    bench.print_vs_measured_reference(acc, ref, threads=1)
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if ln.startswith("| pgmsu")]
    assert len(rows) == 1 and "vca-fcls" not in out  # only methods timed on both sides
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[2] == "5.50 / 7.50" and cells[3] == "1: 4.70 / 11.00"
    assert cells[4] == "better aRMSE, worse SAD"  # against the anchor 4.5° / 12.3
    assert cells[-1] == "8.0×"


_FAKE_BLIND_INIT = "raise ImportError('the real package imports MATLAB and SPAMS wrappers')\n"
_FAKE_PGMSU = '''
import numpy as np


class PGMSU:
    def __init__(self):
        self.device = "cuda:0"  # what HySUPP's PGMSU picks on a CPU-only torch

    def compute_endmembers_and_abundances(self, Y, p, seed=0):
        assert str(self.device) == "cpu"
        idx = np.random.default_rng(seed).choice(Y.shape[1], p, replace=False)
        return Y[:, idx], np.full((p, Y.shape[1]), 1.0 / p)
'''


@pytest.fixture
def fake_hysupp(tmp_path, monkeypatch):
    """A HySUPP-like checkout (its blind package __init__ fails to import); sys.path/modules restored."""
    root = tmp_path / "hysupp"
    blind = root / "src" / "model" / "blind"
    blind.mkdir(parents=True)
    (root / "src" / "__init__.py").write_text("")
    (root / "src" / "model" / "__init__.py").write_text("")
    (blind / "__init__.py").write_text(_FAKE_BLIND_INIT)
    (blind / "PGMSU.py").write_text(_FAKE_PGMSU)
    (blind / "AA.py").write_text("import simhsi_no_such_module_spams\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    for k in [k for k in sys.modules if k == "src" or k.startswith("src.")]:
        monkeypatch.delitem(sys.modules, k)
    yield root
    for k in [k for k in sys.modules if k == "src" or k.startswith("src.")]:
        del sys.modules[k]


def test_hysupp_harness_runs_a_checkout_without_its_package_init(fake_hysupp, tmp_path):
    harness = load_benchmark("bench_hysupp")
    out = tmp_path / "ref.json"
    harness.main(["--hysupp", str(fake_hysupp), "--methods", "pgmsu", "--datasets", "samson",
                  "--seeds", "0", "1", "--json", str(out)])
    r = json.loads(out.read_text())["accuracy"]["samson"]["pgmsu"]
    assert r["seeds"] == [0, 1] and len(r["sad"]) == len(r["cpu_s"]) == 2
    assert all(s > 0 for s in r["sad"]) and all(a > 0 for a in r["armse"])


def test_hysupp_harness_names_a_missing_dependency(fake_hysupp):
    harness = load_benchmark("bench_hysupp")
    with pytest.raises(SystemExit, match="cannot import HySUPP's AA.py.*simhsi_no_such_module_spams"):
        harness.load_reference_class(str(fake_hysupp), "edaa")


def test_hysupp_harness_rejects_a_folder_that_is_not_a_checkout(tmp_path):
    harness = load_benchmark("bench_hysupp")
    with pytest.raises(SystemExit, match="not a HySUPP checkout"):
        harness.load_reference_class(str(tmp_path), "pgmsu")
