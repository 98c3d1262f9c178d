import logging
import math

import pytest

from yolorep.engine.train.schedule import Schedule


@pytest.mark.parametrize("cosine", [False, True])
def test_learning_rate_runs_from_one_to_lrf_over_the_planned_epochs(cosine):
    schedule = Schedule(10, lrf=0.01, cosine=cosine)
    assert schedule(0) == pytest.approx(1.0) and schedule(10) == pytest.approx(0.01)
    assert schedule(5) == pytest.approx((1 + 0.01) / 2)
    values = [schedule(e) for e in range(11)]
    assert values == sorted(values, reverse=True)


def test_short_runs_cap_warmup_and_mosaic_closing_at_a_third():
    schedule = Schedule(6, lrf=0.01, warmup_epochs=3, close_mosaic=10)
    assert schedule.warmup_epochs == 2 and schedule.close_mosaic == 2
    assert [schedule.mosaic_closed(e) for e in range(6)] == [False] * 4 + [True] * 2
    assert (
        schedule.describe() == "6 epochs, warm-up 2 epochs, mosaic off for the last 2 (a third of the epochs at most)"
    )
    long = Schedule(300, lrf=0.01, warmup_epochs=3, close_mosaic=10)
    assert (long.warmup_epochs, long.close_mosaic) == (3, 10) and "at most" not in long.describe()


def test_ema_warm_up_fits_short_plans_and_keeps_the_asked_one_in_long_ones():
    short = Schedule(14, lrf=0.01)
    tau = short.ema_tau(2000, updates_per_epoch=100)
    assert math.exp(1400 / tau) == pytest.approx(1400 / 10)  # the final average spans a tenth of the updates
    assert Schedule(300, lrf=0.01).ema_tau(2000, updates_per_epoch=1000) == 2000
    assert Schedule(2, lrf=0.01).ema_tau(2000, updates_per_epoch=3) == 6  # tiny plans: tau is the plan itself
    budget = Schedule(10_000, lrf=0.01, time_budget=100.0)
    budget.refit(done=1, elapsed=10.0, epoch_seconds=[10.0], final_seconds=0.0)
    assert budget.ema_tau(2000, updates_per_epoch=100) == Schedule(10, lrf=0.01).ema_tau(2000, 100)  # follows refits


def test_time_budget_fits_the_epochs_to_the_measured_speed(caplog):
    schedule = Schedule(10_000, lrf=0.01, time_budget=100.0)
    assert not schedule.fitted and schedule.describe().startswith("epochs fitted to the 100s budget")
    schedule.refit(done=1, elapsed=12.0, epoch_seconds=[10.0], final_seconds=5.0)
    assert schedule.epochs == 1 + (100 - 12 - 5) // 10
    assert schedule.fitted and schedule.describe().startswith("9 epochs, warm-up 3 epochs")
    with caplog.at_level(logging.INFO):
        schedule.refit(done=3, elapsed=40.0, epoch_seconds=[10.0, 14.0, 14.0], final_seconds=5.0)
    assert schedule.epochs == 3 + (100 - 40 - 5) // 14 and "14.0s per epoch measured" in caplog.text
    schedule.refit(done=7, elapsed=98.0, epoch_seconds=[14.0] * 7, final_seconds=5.0)
    assert schedule.epochs == 7  # no time left for another epoch: the plan ends where training is
    noisy = Schedule(10_000, lrf=0.01, time_budget=100.0)
    noisy.refit(done=4, elapsed=31.0, epoch_seconds=[16.0, 6.0, 4.0, 5.0], final_seconds=5.0)
    assert noisy.epochs == 4 + (100 - 31 - 5 - (6 - 5)) // 5  # first epoch left out, the slowest recent kept room
    capped = Schedule(4, lrf=0.01, time_budget=1e6)
    capped.refit(done=1, elapsed=1.0, epoch_seconds=[1.0], final_seconds=1.0)
    assert capped.epochs == 4  # --epochs caps a budget that would allow more


def test_schedule_state_travels_in_the_scheduler_state_dict():
    import torch

    schedule = Schedule(10_000, lrf=0.1, time_budget=50.0)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    schedule.refit(done=1, elapsed=5.0, epoch_seconds=[5.0], final_seconds=5.0)
    state = scheduler.state_dict()
    fresh = Schedule(10_000, lrf=0.1, time_budget=50.0)
    torch.optim.lr_scheduler.LambdaLR(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), fresh)
    other = torch.optim.lr_scheduler.LambdaLR(optimizer, fresh)
    other.load_state_dict(state)
    assert fresh.epochs == schedule.epochs == 1 + (50 - 5 - 5) // 5
