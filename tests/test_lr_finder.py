"""The LR range test (resnet_cli/core/lr_finder.py): the rules on synthetic and recorded curves, the
warnings, and that the test leaves the network as it found it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import needs_data
from resnet_cli.core.lr_finder import check_found, find_lr, zoom_end_lr
from resnet_cli.core.schedule import LRFindResult, pick_lrs, smooth

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "results" / "lr-range-test"


def _warmup_curve(n=485, end_lr=1.0, start_lr=1e-4, seed=0, bump_at=None, min_at=0.4, noise=0.08):
    """A linear range test's raw loss: falls from 4.5 while the LR is low, climbs once the LR
    passes ``min_at``; batch noise; optionally a 10-step spike at step ``bump_at``."""
    rng = np.random.default_rng(seed)
    lrs = np.linspace(start_lr, end_lr, n)
    progress = 1.0 - np.exp(-np.arange(n) / 60)           # learning: 4.5 -> ~1.1 over the test
    too_high = 6.4 * np.maximum(lrs - min_at, 0) ** 1.5   # too high an LR: the loss climbs
    raw = 4.5 - 3.4 * progress + too_high + rng.normal(0, noise, n)
    if bump_at is not None:
        raw[bump_at:bump_at + 10] += 1.5
    return lrs, raw


def _true_min_lr(**kw):
    """The LR at the minimum of the noiseless curve (what min_loss should find, give or take the
    smoothing's lag of about 1 / smooth_f = 20 steps)."""
    lrs, clean = _warmup_curve(noise=0.0, **kw)
    return lrs[int(np.argmin(clean))], lrs[1] - lrs[0]


def test_min_loss_on_a_warmup_curve_lands_where_the_loss_stops_improving():
    lrs, raw = _warmup_curve()
    max_lr, min_lr = pick_lrs(lrs, smooth(raw, 0.05), "min_loss", 1e-4)
    true_lr, per_step = _true_min_lr()
    assert abs(max_lr - true_lr) < 25 * per_step  # the smoothed minimum, within the EMA's lag
    # min_lr: the first LR where the smoothed loss is 2 % below its start; early in a linear test,
    # so the cycle starts and (no annihilation) ends far below max_lr
    sm = smooth(raw, 0.05)
    assert min_lr == lrs[np.flatnonzero(sm < 0.98 * sm[0])[0]] and min_lr < max_lr / 10


def test_a_transient_bump_does_not_move_the_pick():
    lrs, raw = _warmup_curve()
    _, bumped = _warmup_curve(bump_at=200)
    clean = pick_lrs(lrs, smooth(raw, 0.05), "min_loss", 1e-4)[0]
    with_bump = pick_lrs(lrs, smooth(bumped, 0.05), "min_loss", 1e-4)[0]
    assert with_bump == pytest.approx(clean, rel=0.1)
    # a spike that lands on the minimum itself still leaves the pick in the flat region around it
    _, spike_at_min = _warmup_curve(bump_at=int(np.searchsorted(lrs, clean)) - 5)
    assert 0.25 < pick_lrs(lrs, smooth(spike_at_min, 0.05), "min_loss", 1e-4)[0] < 0.6


def test_an_early_minimum_is_picked_and_not_flagged_as_the_end():
    lrs, raw = _warmup_curve(min_at=0.08)
    r = LRFindResult(list(lrs), list(smooth(raw, 0.05)), *pick_lrs(lrs, smooth(raw, 0.05), "min_loss", 1e-4),
                     rule="min_loss")
    true_lr, per_step = _true_min_lr(min_at=0.08)
    assert true_lr < 0.5 and abs(r.max_lr - true_lr) < 25 * per_step
    assert check_found(r, end_lr=1.0) == []


def test_max_acc_reads_the_accuracy_curve():
    lrs = np.linspace(1e-4, 1.0, 200)
    acc = 0.1 + 0.6 * np.exp(-((lrs - 0.3) / 0.2) ** 2)
    loss = 3 - 2 * acc
    assert pick_lrs(lrs, loss, "max_acc", 1e-4, accs=acc)[0] == pytest.approx(0.3, abs=0.01)
    with pytest.raises(ValueError, match="max_acc"):
        pick_lrs(lrs, loss, "max_acc", 1e-4)


def _ema(values, f):
    """The EMA recursion torch-lr-finder applies, written out: s[0] = v[0], s[i] = f v[i] + (1 - f) s[i-1]."""
    out = []
    for v in values:
        out.append(v if not out else f * v + (1 - f) * out[-1])
    return np.array(out)


@pytest.mark.parametrize("f", [0.05, 0.2, 0.5])
def test_smooth_is_torch_lr_finders_ema(f):
    """smooth (pandas ewm) gives the recursion's numbers, and so the same max_acc pick."""
    lrs, raw = _warmup_curve()
    accs = np.clip(0.1 + 0.5 * (4.5 - raw) / 3.4, 0, 1)
    np.testing.assert_allclose(smooth(raw, f), _ema(raw, f), rtol=1e-15, atol=0)
    np.testing.assert_allclose(smooth(accs, f), _ema(accs, f), rtol=1e-15, atol=1e-16)
    assert pick_lrs(lrs, smooth(raw, f), "max_acc", 1e-4, accs=smooth(accs, f)) == \
        pick_lrs(lrs, _ema(raw, f), "max_acc", 1e-4, accs=_ema(accs, f))
    assert len(smooth([], f)) == 0


def test_warnings_name_the_plot_and_what_to_change():
    still_falling = LRFindResult([0.1, 0.5, 1.0], [3.0, 2.0, 1.0], 1.0, 0.01, "min_loss")
    (w,) = check_found(still_falling, end_lr=1.0)
    assert "still improving" in w and "lr_finder.end_lr" in w and "plots/lr_finder.png" in w
    too_low = LRFindResult([1e-4, 1e-3, 1e-2], [3.0, 2.0, 2.5], 0.001, 1e-4, "min_loss")
    (w,) = check_found(too_low, end_lr=1.0)
    assert "outside" in w and "plots/lr_finder.png" in w and "scheduler.max_lr" in w
    fine = LRFindResult([0.1, 0.4, 1.0], [3.0, 2.0, 2.5], 0.4, 0.01, "min_loss")
    assert check_found(fine, end_lr=1.0) == []


@pytest.mark.skipif(not (RECORDED / "exponential-full" / "range_test.json").is_file(),
                    reason="results/lr-range-test/exponential-full/range_test.json not committed")
def test_rule_on_the_recorded_full_size_exponential_curve():
    """The old test on the full CIFAR-10 (JPEG q75 copy), batch 512: min_loss picks ~0.005, the LR
    that trained to 85 % (issue 12); the recorded file's own pick is reproduced exactly."""
    rec = json.loads((RECORDED / "exponential-full" / "range_test.json").read_text())
    lrs, losses = np.array(rec["lrs"]), np.array(rec["losses"])
    max_lr, min_lr = pick_lrs(lrs, losses, "min_loss", rec["lr_finder"]["start_lr"],
                              accs=np.array(rec["accs_smoothed"]))
    assert (max_lr, min_lr) == (pytest.approx(rec["max_lr"]), pytest.approx(rec["min_lr"]))
    np.testing.assert_allclose(smooth(rec["accs"], 0.05), rec["accs_smoothed"], rtol=1e-15)  # recorded by the old loop
    assert 0.002 < max_lr < 0.02
    assert check_found(LRFindResult(list(lrs), list(losses), max_lr, min_lr, "min_loss"), end_lr=10.0)


class _Batches:
    """Fixed random batches with the ``epoch(epoch)`` interface of resnet_cli.data.batches."""

    def __init__(self, n_batches=4, bs=16):
        g = torch.Generator().manual_seed(0)
        self.data = [(torch.randn(bs, 3, 8, 8, generator=g), torch.randint(0, 10, (bs,), generator=g))
                     for _ in range(n_batches)]

    def __len__(self):
        return len(self.data)

    def epoch(self, epoch, start_step=0):
        yield from self.data[start_step:]


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))


@pytest.mark.parametrize("step_mode", ["linear", "exp"])
def test_range_test_restores_weights_and_buffers_and_is_quiet(step_mode, capsys):
    model = _net()
    before = copy.deepcopy(model.state_dict())
    seen = []

    def bar(steps):
        for i in steps:
            seen.append(i)
            yield i

    make_opt = lambda params, **kw: torch.optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True, **kw)
    r = find_lr(model, make_opt, _Batches(), torch.device("cpu"), step_mode=step_mode, start_lr=1e-3,
                end_lr=1.0, num_iter=12, rule="min_loss", smooth_f=0.05, diverge_th=5.0, progress=bar)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats
    assert len(r.lrs) == len(r.losses) == len(r.accs) == len(seen) <= 12
    assert all(0.0 <= a <= 1.0 for a in r.accs)
    assert r.step_mode == step_mode and r.lrs[0] == pytest.approx(1e-3)
    if step_mode == "linear" and len(r.lrs) > 2:
        assert np.allclose(np.diff(r.lrs), (1.0 - 1e-3) / 11)
    assert capsys.readouterr().out == ""  # torch-lr-finder's prints and tqdm bar are silenced
    # a fresh optimizer built after the test starts from the initial state
    opt = make_opt(model.parameters())
    assert all(not s for s in opt.state.values())


def test_zoom_end_lr_on_too_steep_and_resolved_ramps():
    # diverged on the third step (the 1,000-image quick run): repeat up to where it stopped
    assert zoom_end_lr([1e-4, 0.053, 0.105], [4.16, 4.42, 27.8], 20, 1e-4) == pytest.approx(0.105)
    # a resolved minimum (past the first tenth): no repeat
    lrs, raw = _warmup_curve()
    assert zoom_end_lr(lrs, smooth(raw, 0.05), 485, 1e-4) is None
    # ran to the end, minimum at step 3, then rose: repeat up to where it rose 50 % above it
    lrs = list(np.linspace(1e-4, 1.0, 100))
    losses = [3.0, 2.5, 2.2, 2.0] + [2.0 + 0.1 * i for i in range(96)]
    assert zoom_end_lr(lrs, losses, 100, 1e-4) == pytest.approx(lrs[3 + 12])  # 2.0 + 0.1 * 11 > 1.5 * 2.0
    assert zoom_end_lr([1e-4, 2e-4, 3e-4], [3.0, 9.0, 30.0], 20, 1e-4) is None  # nothing left to resolve


def test_a_too_steep_ramp_is_repeated_lower():
    model = _net()
    before = copy.deepcopy(model.state_dict())
    make_opt = lambda params, **kw: torch.optim.SGD(params, lr=0.1, momentum=0.9, **kw)
    r = find_lr(model, make_opt, _Batches(), torch.device("cpu"), step_mode="linear", start_lr=1e-3,
                end_lr=1e6, num_iter=20, rule="min_loss", smooth_f=0.5, diverge_th=5.0)
    assert r.zooms >= 1 and r.end_lr < 1e6 and max(r.lrs) <= r.end_lr * 1.0001
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # every ramp is kept for the plot, each ending where the next one was repeated up to
    assert len(r.earlier) == r.zooms
    ends = [max(e["lrs"]) for e in r.earlier] + [max(r.lrs)]
    assert all(later <= before * 1.0001 for before, later in zip(ends, ends[1:])), ends
    # a repeated ramp stops once its loss is ZOOM_DIVERGE_TH x its minimum: no steps wasted past it
    from resnet_cli.core.lr_finder import ZOOM_DIVERGE_TH

    if len(r.lrs) < 20:
        assert r.losses[-1] > ZOOM_DIVERGE_TH * min(r.losses[:-1])


def test_the_plausible_band_follows_the_batch_size():
    """The references' 0.02-2 belongs to batch 512; other batch sizes scale it by the square root
    of the ratio, so the twin's (batch 128) and the quick run's (batch 50) picks are judged at
    their own batch size."""
    from resnet_cli.core.lr_finder import plausible_band

    assert plausible_band() == (0.02, 2.0) == plausible_band(512)
    assert plausible_band(128) == pytest.approx((0.01, 1.0))
    assert plausible_band(50) == pytest.approx((0.02 * (50 / 512) ** 0.5, 2.0 * (50 / 512) ** 0.5))
    quick = LRFindResult([1e-4, 0.0042, 0.0263], [4.45, 3.86, 7.4], 0.00424, 0.000424, "min_loss")
    (w,) = check_found(quick, end_lr=0.0263, batch_size=50)
    assert "outside the usual 0.00625-0.625 for this recipe at batch 50" in w
    twin = LRFindResult([1e-4, 0.5, 0.87, 1.0], [2.3, 1.9, 1.7, 2.5], 0.87, 0.031, "min_loss")
    assert check_found(twin, end_lr=1.0, batch_size=128) == []  # e2's pick (results/twin-study)
    (w,) = check_found(quick, end_lr=0.0263, batch_size=512)
    assert "outside the usual 0.02-2 for this recipe at batch 512" in w
    (w,) = check_found(quick, end_lr=0.0263)  # no batch size: the band at 512
    assert "outside the usual 0.02-2" in w


@needs_data
def test_the_quick_runs_range_test_costs_less_than_training_and_warns_not(trained_run):
    """experiment=quick on the data it was made for (1,000 CIFAR-10 images, batch 50, 20-step
    warm-up, 40 training steps): the range test ends without a warning and, all its ramps
    together, takes fewer steps than training (issue 21, row 2). The session's trained_run is
    experiment=quick on the offline copy (conftest's TINY): its checkpoint holds the range test."""
    from omegaconf import OmegaConf

    from resnet_cli.core.checkpoint import load_checkpoint

    cfg = OmegaConf.load(trained_run / ".hydra" / "config.yaml")
    assert "experiment=quick" in OmegaConf.load(trained_run / ".hydra" / "overrides.yaml")
    r = load_checkpoint(trained_run / "checkpoints" / "last.pt")["lr"]
    assert r["rule"] == "steepest" and r["lrs"], r
    assert r["warnings"] == [], r["warnings"]
    spent = len(r["lrs"]) + sum(len(e["lrs"]) for e in r["earlier"])
    training = cfg.trainer.epochs * (cfg.data.train_subset // cfg.data.batch_size)
    assert training == 40
    assert spent < training, (spent, training, [len(e["lrs"]) for e in r["earlier"]], len(r["lrs"]))
    assert (trained_run / "plots" / "lr_finder.png").is_file()


def _fastai_valley(lrs, losses):
    """fastai.callback.schedule.valley as published (fastai 2.5), for comparison."""
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def test_valley_rule_matches_fastai_on_the_recorded_curve_and_random_ones():
    import json

    from resnet_cli.core.schedule import pick_lrs, valley_index

    rec = json.loads((Path(__file__).parent.parent / "results/lr-range-test/warmup-10k-b128/range_test.json").read_text())
    lrs, losses = np.array(rec["lrs"]), np.array(rec["losses"])
    i = valley_index(losses)
    assert i == _fastai_valley(list(lrs), list(losses))
    max_lr, _ = pick_lrs(lrs, losses, "valley", 1e-4)
    assert max_lr == lrs[i] and 0.3 < max_lr < rec["max_lr"]  # below the cliff that min_loss sits at
    rng = np.random.default_rng(0)
    for _ in range(20):
        curve = np.cumsum(rng.normal(0, 1, 60))
        assert valley_index(curve) == _fastai_valley(list(range(60)), list(curve))


def test_min_rule_change_reads_a_loss_that_rises_first():
    """On the twin's recorded curve (results/twin-study, b) the loss rises from 4.6 to 16 before it
    falls: ``fall`` finds its 2 % drop only after the bump and is capped at max_lr / 10, while
    ``change`` marks where the loss first moves, ~0.01, before the bump."""
    from resnet_cli.core.schedule import pick_lrs

    rec = json.loads((Path(__file__).parent.parent / "results/twin-study/runs/b-default-s0/range_test.json").read_text())
    lrs, losses = np.array(rec["lrs"]), np.array(rec["losses"])
    max_lr, fall = pick_lrs(lrs, losses, "min_loss", 1e-4, min_rule="fall")
    _, change = pick_lrs(lrs, losses, "min_loss", 1e-4, min_rule="change")
    assert fall == pytest.approx(max_lr / 10)  # capped
    i = int(np.flatnonzero(lrs == change)[0])
    assert change < 0.02 and losses[i] > 1.02 * losses[0] and np.all(np.abs(losses[:i] / losses[0] - 1) <= 0.02)
    with pytest.raises(ValueError, match="lr_finder.min_rule"):
        pick_lrs(lrs, losses, "min_loss", 1e-4, min_rule="lowest")
