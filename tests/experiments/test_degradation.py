"""The degradation verdict on synthetic numbers, and the summary files from synthetic runs."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from reslab.experiments.common import QUICK, ExperimentSetup, RunResult
from reslab.experiments.degradation import DepthErrors, summarise_degradation, verdict


def E(net, depth, train, test=None):
    return DepthErrors(net, depth, tuple(train), tuple(test if test is not None else [t + 5 for t in train]))


def test_paper_like_numbers_say_degradation_and_removal():
    plain = [E("plain20", 20, [10.0, 10.2, 9.8]), E("plain56", 56, [14.0, 14.3, 13.9])]
    res = [E("resnet20", 20, [9.0, 9.1, 8.9]), E("resnet56", 56, [6.0, 6.2, 6.1])]
    text = " ".join(verdict(plain, res))
    assert "plain56) trains worse than the shallower one (plain20)" in text
    assert "degradation problem" in text and "one seed" not in text
    assert "The residual nets remove it: the deeper resnet56 trains better than resnet20" in text
    assert "At depth 56, resnet56 ends with 7.97 points lower training error than plain56" in text


def test_differences_within_seed_noise_are_hedged():
    # plain: 0.3 point gap, seed std 1.0 each -> within noise
    plain = [E("plain20", 20, [10.0, 11.0, 12.0]), E("plain56", 56, [10.3, 11.3, 12.3])]
    res = [E("resnet20", 20, [9.0, 10.0, 11.0]), E("resnet56", 56, [9.1, 10.1, 11.1])]
    sentences = verdict(plain, res)
    assert "equally well within seed noise" in sentences[0]
    assert "no degradation is resolved" in sentences[0]
    assert "within seed noise" in sentences[1]
    assert "degradation problem" not in " ".join(sentences)


def test_single_seed_is_flagged_and_no_degradation_is_said_plainly():
    plain = [E("plain20", 20, [12.0]), E("plain56", 56, [11.0])]
    res = [E("resnet20", 20, [11.0]), E("resnet56", 56, [12.5])]
    sentences = verdict(plain, res)
    assert "trains better than the shallower one" in sentences[0] and "seed noise is unmeasured" in sentences[0]
    assert sentences[1].startswith("With shortcuts too: the deeper resnet56 still trains worse")
    assert "(one seed)" in sentences[1]


def test_residual_nets_failing_to_fix_degradation():
    plain = [E("plain20", 20, [10.0, 10.1]), E("plain56", 56, [15.0, 15.1])]
    res = [E("resnet20", 20, [9.0, 9.1]), E("resnet56", 56, [12.0, 12.1])]
    assert verdict(plain, res)[1].startswith("The residual nets do not remove it at this scale")


def _rows(train_err, test_err, epochs=3):
    # errors shrink towards the given final values
    return [{"epoch": e, "step": 10 * e, "lr": 0.1, "train_loss": 1.0 / e, "train_top1": 100 - train_err - 3 * (epochs - e),
             "val_loss": 1.1 / e, "val_top1": 100 - test_err - 3 * (epochs - e)} for e in range(1, epochs + 1)]


def test_summary_writes_plot_table_and_provenance(tmp_path):
    finals = {"plain20": (10, 15), "plain56": (14, 18), "resnet20": (9, 14), "resnet56": (6, 12)}
    depths = {"plain20": 20, "plain56": 56, "resnet20": 20, "resnet56": 56}
    results = [RunResult(net, seed, tmp_path / "runs" / f"{net}-s{seed}", _rows(tr + seed * 0.1, te + seed * 0.1), {"model": {"name": net}})
               for seed in (0, 1) for net, (tr, te) in finals.items()]
    setup = ExperimentSetup(data="/nowhere", out=tmp_path, seeds=(0, 1), preset=QUICK)
    summary = summarise_degradation(setup, results, depths)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["seeds"] == [0, 1] and data["code_version"]["reslab"]
    assert len(data["runs"]) == 8 and data["runs"][0]["config"] == {"model": {"name": "plain20"}}
    errs = {e["net"]: e for e in data["summary"]["errors"]}
    assert np.allclose(errs["plain56"]["train_error"], [14.0, 14.1])
    md = (tmp_path / "results.md").read_text()
    assert "| plain56 | 56 | 14.05 ± 0.07 | 18.05 ± 0.07 | 2 |" in md
    assert "degradation problem" in md and summary["verdict"] == data["summary"]["verdict"]
    with Image.open(tmp_path / "degradation.png") as im:
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.shape[1] > 800 and pixels.std() > 10


def test_residual_nets_closing_most_of_the_plain_gap_remove_most_of_it():
    # the demo's digits numbers: plain56 stuck near chance, resnet56 a point behind resnet20
    plain = [E("plain20", 20, [1.35]), E("plain56", 56, [77.84])]
    res = [E("resnet20", 20, [0.64]), E("resnet56", 56, [1.49])]
    sentence = verdict(plain, res)[1]
    assert sentence.startswith("The residual nets remove most of it: the deeper resnet56 ends 0.85 points behind resnet20")
    assert "against 76.49 points between the plain nets" in sentence
