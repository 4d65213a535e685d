"""One Cycle as the recipe wants it, and the LR range-test rules."""

import numpy as np
import pytest
import torch

from resnet_cli.errors import ConfigError
from resnet_cli.core.schedule import one_cycle, pick_lrs


def _lrs(epochs=24, spe=10, max_epoch=5, final_div_factor=1.0, max_lr=0.4, min_lr=0.004):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr, momentum=0.9, nesterov=True)
    sched = one_cycle(opt, max_lr=max_lr, min_lr=min_lr, epochs=epochs, steps_per_epoch=spe,
                      max_epoch=max_epoch, final_div_factor=final_div_factor, anneal_strategy="linear",
                      cycle_momentum=True, base_momentum=0.85, max_momentum=0.95)
    out = []
    for _ in range(epochs * spe):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("epochs, spe, max_epoch", [(24, 10, 5), (24, 97, 5), (6, 7, 2)])
def test_one_cycle_starts_peaks_ends(epochs, spe, max_epoch):
    lrs = _lrs(epochs, spe, max_epoch)
    assert lrs[0] == pytest.approx(0.004)
    assert int(lrs.argmax()) == max_epoch * spe - 1  # the last batch of epoch max_epoch
    assert lrs.max() == pytest.approx(0.4)
    assert lrs[-1] == pytest.approx(0.004)
    rise, fall = np.diff(lrs[: max_epoch * spe]), np.diff(lrs[max_epoch * spe - 1:])
    assert (rise > 0).all() and (fall < 0).all()
    assert np.allclose(np.diff(rise), 0, atol=1e-9)  # linear


def test_one_epoch_cycle_is_a_warm_up_ending_at_max_lr():
    """trainer.epochs=1 scheduler.max_epoch=1: the LR rises linearly to max_lr on the last batch."""
    lrs = _lrs(epochs=1, spe=10, max_epoch=1)
    assert lrs[0] == pytest.approx(0.004) and lrs[-1] == pytest.approx(0.4)
    assert (np.diff(lrs) > 0).all() and np.allclose(np.diff(lrs, 2), 0, atol=1e-9)


def test_final_div_factor_ends_below_min_lr():
    assert _lrs(final_div_factor=1e4)[-1] == pytest.approx(0.004 / 1e4)


def test_lr_rules_on_a_known_curve():
    lrs = np.logspace(-5, 1, 121)
    x = np.log10(lrs)
    # flat until 1e-3, falls to a minimum at 1e-1, climbs after
    losses = np.where(x < -3, 2.3, 2.3 - 1.2 * np.sin(np.clip((x + 3) / 2, 0, 1) * np.pi / 2) ** 2)
    losses = np.where(x > -1, 1.1 + 3 * (x + 1) ** 2, losses)
    max_lr, min_lr = pick_lrs(lrs, losses, "min_loss_div10", 1e-5)
    assert max_lr == pytest.approx(1e-2, rel=0.13)
    assert 1e-3 <= min_lr <= 2e-3  # where the loss starts to fall
    assert pick_lrs(lrs, losses, "min_loss", 1e-5)[0] == pytest.approx(1e-1, rel=0.13)
    steep = pick_lrs(lrs, losses, "steepest", 1e-5)[0]
    assert 3e-3 < steep < 3e-2
    with pytest.raises(ValueError):
        pick_lrs(lrs, losses, "nope", 1e-5)


def test_one_cycle_refuses_a_cycle_upside_down():
    with pytest.raises(ConfigError, match=r"scheduler.min_lr=0.5 is not allowed: must be <= scheduler.max_lr=0.1"):
        _lrs(max_lr=0.1, min_lr=0.5)


@pytest.mark.parametrize("min_lr", [0.0, -0.01])
def test_one_cycle_refuses_a_non_positive_lr(min_lr):
    with pytest.raises(ValueError, match=r"One Cycle needs positive LRs"):
        _lrs(max_lr=0.1, min_lr=min_lr)


def test_one_cycle_accepts_min_lr_equal_to_max_lr():
    assert np.allclose(_lrs(max_lr=0.1, min_lr=0.1), 0.1)


def test_given_lrs_are_plain_and_checkpoints_of_both_kinds_read_back():
    from resnet_cli.core.schedule import LRFindResult, LRs, lrs_from_dict, resolve_lrs

    given = resolve_lrs(0.4, 0.004, range_test=lambda: pytest.fail("the range test ran for given LRs"))
    assert given == LRs(0.4, 0.004, "given") and lrs_from_dict(given.as_dict()) == given
    old = {**LRFindResult([], [], 0.4, 0.004, "given").as_dict()}  # how earlier versions stored given LRs
    assert lrs_from_dict(old) == given
    found = LRFindResult([1e-4, 0.2, 0.4], [2.3, 2.0, 2.5], 0.2, 0.02, "min_loss", accs=[0.1, 0.2, 0.1])
    assert lrs_from_dict(found.as_dict()) == found
