"""amlfs.evaluate on a tiny finished search: every row retrained and reported."""

import json

import numpy as np
import pytest

from amlfs.config import ConfigError
from conftest import run_cli

ROWS = ["searched", "best_val_mu", "schedule", "ce", "label_smoothing", "focal", "gce", "sce", "nce_rce", "poly1", "mae", "search_model"]


def test_evaluate_writes_every_row(tmp_path):
    search_dir, out_dir = tmp_path / "search", tmp_path / "evaluation"
    search = run_cli(search_dir, "experiment=smoke")
    assert search.returncode == 0, search.stderr
    results_file = search_dir / "results.json"
    written = json.loads(results_file.read_text())
    for key in ("fused_adam", "channels_last", "compile"):  # as written by versions before these keys existed
        del written["config"]["train"][key]
    results_file.write_text(json.dumps(written))
    result = run_cli(out_dir, f"run={search_dir}", "evaluate.seeds=2", "evaluate.first_seed=3", module="amlfs.evaluate")
    assert result.returncode == 0, result.stderr
    evaluation = json.loads((out_dir / "evaluation.json").read_text())
    assert [row["name"] for row in evaluation["rows"]] == ROWS
    search_results = json.loads((search_dir / "results.json").read_text())
    for row in evaluation["rows"]:
        assert len(row["runs"]) == (1 if row["name"] == "search_model" else 2)
        assert 0 <= row["test_acc"] <= 1 and 0 <= row["best_val_acc"] <= 1
        if row["name"] != "search_model":
            assert [len(r["test_curve"]) for r in row["runs"]] == [2, 2] and [r["seed"] for r in row["runs"]] == [3, 4]
            assert row["runs"][0]["test_acc"] == row["runs"][0]["test_curve"][-1]
            for run in row["runs"]:  # the last epoch's validation confusion matrix, as the accuracy saw it
                confusion = np.array(run["val_confusion"])
                assert confusion.shape == (10, 10) and confusion.sum() == evaluation["val_size"]
                assert run["val_curve"][-1] == pytest.approx(np.trace(confusion) / confusion.sum(), abs=1e-12)
    search_model = evaluation["rows"][-1]
    assert search_model["test_acc"] == search_results["final"]["test_acc"]
    last_val = {row["name"]: sum(r["val_curve"][-1] for r in row["runs"]) / 2 for row in evaluation["rows"][:3]}
    val_size = round(0.1 * 400)  # the smoke experiment's 400 training images, val_fraction 0.1
    ahead = {name: acc for name, acc in last_val.items()
             if name != "searched" and acc - last_val["searched"] > (acc * (1 - acc) / val_size) ** 0.5}
    keep = max(ahead, key=ahead.get) if ahead else "searched"
    assert evaluation["val_size"] == val_size and evaluation["take_home"] == keep and evaluation["transition"] is None
    table = (out_dir / "evaluation.md").read_text()
    assert all(f"| {name} |" in table for name in ROWS)
    call = {"searched": f'amlfs.load_loss("{search_dir}")', "schedule": f'amlfs.load_schedule("{search_dir}")',
            "best_val_mu": f'amlfs.load_loss("{search_dir}", which="best_val_mu")'}[keep]
    assert f"Take home: {keep}, `{call}`" in table
    hand_crafted = {row["name"]: sum(r["val_curve"][-1] for r in row["runs"]) / 2 for row in evaluation["rows"][3:-1]}
    pick = max(hand_crafted, key=hand_crafted.get)
    ahead = hand_crafted[pick] - last_val[keep] > (hand_crafted[pick] * (1 - hand_crafted[pick]) / val_size) ** 0.5
    assert evaluation["hand_crafted_pick"] == pick and evaluation["recommended"] == (pick if ahead else keep)
    recommended_call = f'amlfs.losses.BASELINES["{pick}"]()' if ahead else call
    assert f"Recommended: {evaluation['recommended']}, `{recommended_call}`" in table
    assert (out_dir / "loss_curves.png").stat().st_size > 0
    assert {p.name for p in (out_dir / "tb").iterdir() if p.is_dir()} == set(ROWS)


def test_take_home_is_the_final_mu_unless_another_candidate_is_more_than_one_standard_error_ahead():
    from amlfs.evaluate import Validation, take_home

    def row(name, last_vals):  # the first epoch's validation accuracy must not count
        return {"name": name, "runs": [{"val_curve": [0.95, v]} for v in last_vals]}

    assert take_home([row("schedule", [0.70, 0.50]), row("searched", [0.60, 0.62]), row("ce", [0.9, 0.9])], Validation(100)) == "searched"
    assert take_home([row("searched", [0.5]), row("schedule", [0.7])], Validation(100)) == "schedule"  # 0.2 ahead, 1 SE = 0.046
    assert take_home([row("searched", [0.6]), row("schedule", [0.6])], Validation(100)) == "searched"
    # 0.64 against 0.60: one standard error of 0.64 is 0.048 on 100 images (ahead by less), 0.015 on 1000 (by more)
    assert take_home([row("searched", [0.60]), row("schedule", [0.64])], Validation(100)) == "searched"
    assert take_home([row("searched", [0.60]), row("schedule", [0.64])], Validation(1000)) == "schedule"
    assert take_home([row("searched", [0.60]), row("best_val_mu", [0.64])], Validation(1000)) == "best_val_mu"
    # both ahead by more than one standard error: the higher one; only one ahead by more: that one
    assert take_home([row("searched", [0.5]), row("schedule", [0.7]), row("best_val_mu", [0.8])], Validation(100)) == "best_val_mu"
    assert take_home([row("searched", [0.5]), row("schedule", [0.8]), row("best_val_mu", [0.7])], Validation(100)) == "schedule"
    assert take_home([row("searched", [0.60]), row("schedule", [0.64]), row("best_val_mu", [0.62])], Validation(1000)) == "schedule"
    assert take_home([row("searched", [0.60]), row("schedule", [0.62]), row("best_val_mu", [0.64])], Validation(100)) == "searched"
    assert take_home([row("schedule", [0.7]), row("ce", [0.9])], Validation(100)) is None
    assert take_home([row("searched", [0.7]), row("ce", [0.9])], Validation(100)) is None


def test_recommended_is_the_take_home_loss_unless_the_hand_crafted_pick_is_more_than_one_standard_error_ahead():
    from amlfs.evaluate import Validation, hand_crafted_pick, recommended

    def row(name, last_val):
        return {"name": name, "runs": [{"val_curve": [0.95, last_val]}]}

    searched = [row("searched", 0.60), row("schedule", 0.58)]
    assert hand_crafted_pick([*searched, row("sce", 0.62), row("mae", 0.64), row("ce", 0.63)], Validation(100)) == "mae"
    # mae 0.64 against the take-home 0.60: one standard error of 0.64 is 0.048 on 100 images, 0.015 on 1000
    assert recommended([*searched, row("sce", 0.62), row("mae", 0.64)], Validation(100)) == "searched"
    assert recommended([*searched, row("sce", 0.62), row("mae", 0.64)], Validation(1000)) == "mae"
    assert recommended([row("searched", 0.5), row("schedule", 0.7), row("gce", 0.72)], Validation(100)) == "schedule"
    assert recommended([row("searched", 0.5), row("schedule", 0.7), row("gce", 0.8)], Validation(100)) == "gce"
    assert hand_crafted_pick(searched, Validation(100)) is None and recommended(searched, Validation(100)) is None
    assert recommended([row("searched", 0.5), row("gce", 0.8)], Validation(100)) is None  # no take-home loss without a second candidate


def test_evaluate_refuses_a_missing_run(tmp_path):
    result = run_cli(tmp_path / "evaluation", f"run={tmp_path / 'nothing'}", module="amlfs.evaluate")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "results.json" in result.stderr


def test_evaluate_refuses_bad_rows_data_and_model_files_before_training(tmp_path):
    from amlfs.api import compose_config
    from amlfs.evaluate import execute
    from amlfs.search import execute as search

    search_dir = tmp_path / "search"
    search(compose_config("search", ["experiment=smoke", "device=cpu", "search.epochs=1"]), search_dir)
    (search_dir / "model_best_val.pt").write_bytes((search_dir / "model_best_val.pt").read_bytes()[:300])
    for overrides, message in (
        ([], "^run is missing"),
        (["evaluate.rows=ce"], "^evaluate.rows='ce' is not allowed: give a list"),
        (["evaluate.rows=[]"], r"^evaluate.rows=\[\] is not allowed"),
        (["+evaluate.dataset.max_train=abc"], "^evaluate.dataset.max_train='abc' is not allowed"),
        (["+evaluate.dataset.noise.rate=5"], "^evaluate.dataset.noise.rate=5 is not allowed"),
        (["evaluate.compile=fast"], "^evaluate.compile='fast' is not allowed: choose same, null or one of default"),
        (["evaluate.rows=[ce,search_model]"], "model_best_val.pt: not a readable model file"),
    ):
        run = [f"run={search_dir}"] if overrides else []
        with pytest.raises(ConfigError, match=message):
            execute(compose_config("evaluate", ["device=cpu", *run, *overrides]), tmp_path / "out")
        assert not (tmp_path / "out" / "tb").exists()
    results = json.loads((search_dir / "results.json").read_text())
    results["config"]["model"] = {"_target_": "my_nets.make_net", "name": "custom"}  # a model of your own: no head key
    (search_dir / "results.json").write_text(json.dumps(results))
    for head, message in (("round", "^evaluate.baseline_head='round' is not allowed: choose same, cosine or linear$"),
                          ("linear", "^evaluate.baseline_head='linear' is not allowed: model 'custom' has no head key")):
        with pytest.raises(ConfigError, match=message):
            execute(compose_config("evaluate", ["device=cpu", f"run={search_dir}", "evaluate.rows=[ce]",
                                            f"evaluate.baseline_head={head}"]), tmp_path / "out")
    with pytest.raises(ConfigError, match="is not allowed: it holds results.json already"):
        execute(compose_config("evaluate", ["device=cpu", f"run={search_dir}"]), search_dir)
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "evaluation.json").write_text("{}")
    with pytest.raises(ConfigError, match="is not allowed: it holds evaluation.json already"):
        execute(compose_config("evaluate", ["device=cpu", f"run={search_dir}"]), tmp_path / "earlier")


def test_a_compiler_that_fails_is_one_line(tmp_path):
    from amlfs.api import compose_config
    from amlfs.search import execute as search

    search(compose_config("search", ["experiment=smoke", "device=cpu", "search.epochs=1"]), tmp_path / "search")
    no_compiler = {"CXX": str(tmp_path / "no-such-g++")}  # inductor's C++ compiler, as on a machine without one
    evaluation = run_cli(tmp_path / "evaluation", f"run={tmp_path / 'search'}", "evaluate.seeds=1", "evaluate.rows=[ce]",
                         "evaluate.backend=vectorized", "evaluate.compile=default", module="amlfs.evaluate", env=no_compiler)
    assert evaluation.returncode == 2 and evaluation.stderr.strip().count("\n") == 0
    assert evaluation.stderr.startswith("amlfs: evaluate.compile=default failed on this machine (InvalidCxxCompiler")
    assert evaluation.stderr.strip().endswith("run with evaluate.compile=null")


def test_vectorized_evaluation_retrains_exactly_as_one_by_one(tmp_path):
    from amlfs.api import compose_config
    from amlfs.evaluate import execute
    from amlfs.search import execute as search

    search(compose_config("search", ["experiment=smoke", "device=cpu", "train.dtype=float64", "dataset.max_train=200"]),
           tmp_path / "search")
    rows = {}
    for backend in ("sequential", "vectorized"):
        cfg = compose_config("evaluate", [f"run={tmp_path / 'search'}", "evaluate.seeds=2", "evaluate.first_seed=1",
                                          "evaluate.rows=[schedule,gce]", f"evaluate.backend={backend}", "device=cpu"])
        rows[backend] = execute(cfg, tmp_path / backend)["rows"]
    for one, stacked in zip(rows["sequential"], rows["vectorized"], strict=True):
        for a, b in zip(one["runs"], stacked["runs"], strict=True):
            keys = ("seed", "val_curve", "test_curve", "finite", "val_confusion")
            assert [a[key] for key in keys] == [b[key] for key in keys]


def test_stacked_losses_call_each_run_of_one_loss_once_and_equal_each_copys_own_loss():
    import torch

    from amlfs.evaluate import same_loss_runs, stacked_losses
    from amlfs.losses import BASELINES, SearchedLoss
    from amlfs.spaces.mixture import MixtureSpace

    searched = SearchedLoss(MixtureSpace(), torch.tensor([0.3, 0.9, 0.2, 0.6, 0.4], dtype=torch.float64))
    gce, nce_rce = BASELINES["gce"](), BASELINES["nce_rce"]()
    criteria = [searched, searched, gce, gce, gce, nce_rce, searched]
    runs = same_loss_runs(criteria)
    assert [(c, a, b) for c, a, b in runs] == [(searched, 0, 2), (gce, 2, 5), (nce_rce, 5, 6), (searched, 6, 7)]
    calls = []
    for criterion in (searched, gce, nce_rce):
        def counted(logits, target, unreduced=criterion.unreduced):
            calls.append(len(logits))
            return unreduced(logits, target)
        criterion.unreduced = counted
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(7, 32, 10, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 10, (7, 32), generator=g)
    losses = stacked_losses(runs, outputs, labels)
    assert calls == [2 * 32, 3 * 32, 32, 32]  # one call per run of copies sharing a loss, on all their samples
    reference = torch.stack([criterion(outputs[i], labels[i]) for i, criterion in enumerate(criteria)])
    torch.testing.assert_close(losses, reference, rtol=1e-12, atol=0)
    grad, = torch.autograd.grad(losses.sum(), outputs)
    reference_grad, = torch.autograd.grad(reference.sum(), outputs)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-12, atol=1e-15)
