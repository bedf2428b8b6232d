"""The training state and its checkpoint: saved, swapped in, recovered and restored exactly."""

import json
import math

import pytest
import torch

from critic.errors import CriticError
from critic.training.checkpoints import (
    CHECKPOINT_DIR,
    PREVIOUS_CHECKPOINT_DIR,
    TrainState,
    checkpoint_config,
    has_checkpoint,
    recover_checkpoint,
    remove_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from support.bundles import unsafe_files
from support.data import small_run_config

CPU = torch.device("cpu")


def model_and_optimizer(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Dropout(0.5), torch.nn.Linear(3, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    return model, optimizer


def take_a_step(model, optimizer):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def row(epoch, val_loss):
    return {"epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.5, "val_loss": val_loss}


def test_the_state_keeps_the_best_epochs_weights_and_counts_the_stale_ones():
    model, optimizer = model_and_optimizer()
    state = TrainState.start(model)
    assert state.epoch == 0 and state.best_row == {} and state.best_val_loss == math.inf
    assert state.record(row(1, 0.6), model) is True
    best = {k: v.clone() for k, v in model.state_dict().items()}
    take_a_step(model, optimizer)
    assert state.record(row(2, 0.7), model) is False
    assert state.record(row(3, 0.6), model) is False  # equal is not better
    assert (state.epoch, state.best_epoch, state.stale_epochs) == (3, 1, 2)
    assert state.best_row == row(1, 0.6)
    for name, tensor in best.items():
        assert torch.equal(state.best_weights[name], tensor)
        assert not torch.equal(model.state_dict()[name], tensor)


def test_the_state_says_why_to_stop():
    settings = small_run_config(patience=2, max_seconds=10.0).train
    state = TrainState(best_weights={}, stale_epochs=1, train_seconds=9.9)
    assert state.stop_reason(settings) is None
    state.stale_epochs = 2
    assert state.stop_reason(settings) == "early stop: no better validation loss for 2 epochs"
    state.stale_epochs, state.train_seconds = 0, 10.0
    assert state.stop_reason(settings) == "time budget of 10 s reached"


def test_a_checkpoint_restores_weights_optimizer_random_state_and_counters(tmp_path):
    config = small_run_config()
    model, optimizer = model_and_optimizer()
    state = TrainState.start(model)
    take_a_step(model, optimizer)
    state.record(row(1, 0.5), model)
    take_a_step(model, optimizer)
    state.record(row(2, 0.9), model)
    state.train_seconds, state.step_seconds, state.reviews_seen = 3.5, 2.5, 480
    save_checkpoint(tmp_path, model, optimizer, config, state)
    assert unsafe_files(tmp_path / CHECKPOINT_DIR) == []  # safetensors and JSON, no pickle
    expected_draw = torch.rand(5)  # what the random state gives next, as saved

    fresh, fresh_optimizer = model_and_optimizer(seed=1)
    assert checkpoint_config(tmp_path) == config
    restored = restore_checkpoint(tmp_path, fresh, fresh_optimizer, CPU)
    assert torch.equal(torch.rand(5), expected_draw)
    assert restored.counters() == state.counters()
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor)
        assert torch.equal(restored.best_weights[name], state.best_weights[name])
    # The optimizer goes on exactly as the original would.
    torch.manual_seed(7)
    take_a_step(model, optimizer)
    torch.manual_seed(7)
    take_a_step(fresh, fresh_optimizer)
    for name, tensor in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor)


def test_a_new_checkpoint_replaces_the_old_and_leaves_nothing_beside_it(tmp_path):
    model, optimizer = model_and_optimizer()
    state = TrainState.start(model)
    for epoch in (1, 2):
        state.record(row(epoch, 1.0 / epoch), model)
        save_checkpoint(tmp_path, model, optimizer, small_run_config(), state)
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_DIR]
    saved = json.loads((tmp_path / CHECKPOINT_DIR / "state.json").read_text())
    assert saved["format"] == 1 and len(saved["history"]) == 2 and saved["best_epoch"] == 2


def test_a_kill_between_the_two_renames_leaves_the_previous_checkpoint_to_recover(tmp_path):
    model, optimizer = model_and_optimizer()
    state = TrainState.start(model)
    state.record(row(1, 0.5), model)
    save_checkpoint(tmp_path, model, optimizer, small_run_config(), state)
    # What a kill after "current -> .old" and before "new -> current" leaves, with the new
    # checkpoint's temporary folder half-written beside it.
    (tmp_path / CHECKPOINT_DIR).rename(tmp_path / PREVIOUS_CHECKPOINT_DIR)
    (tmp_path / f".{CHECKPOINT_DIR}.abc123").mkdir()
    assert has_checkpoint(tmp_path)
    assert recover_checkpoint(tmp_path) == tmp_path / CHECKPOINT_DIR
    assert not (tmp_path / PREVIOUS_CHECKPOINT_DIR).exists()
    assert restore_checkpoint(tmp_path, *model_and_optimizer(), CPU).epoch == 1


def test_without_a_checkpoint_there_is_nothing_to_resume(tmp_path):
    assert recover_checkpoint(tmp_path) is None and not has_checkpoint(tmp_path)
    with pytest.raises(CriticError, match=r"nothing to resume: .*checkpoint holds no checkpoint"):
        checkpoint_config(tmp_path)
    (tmp_path / CHECKPOINT_DIR).mkdir()  # a folder without its state.json is no checkpoint
    with pytest.raises(CriticError, match="nothing to resume"):
        restore_checkpoint(tmp_path, *model_and_optimizer(), CPU)


def test_removing_a_checkpoint_removes_both_folders(tmp_path):
    (tmp_path / CHECKPOINT_DIR).mkdir()
    (tmp_path / PREVIOUS_CHECKPOINT_DIR).mkdir()
    remove_checkpoint(tmp_path)
    assert list(tmp_path.iterdir()) == []
    remove_checkpoint(tmp_path / "never-made")  # nothing there: nothing to do
