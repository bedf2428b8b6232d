import json

import numpy as np
import pytest
import torch

from critic.cli import main
from critic.config import ModelConfig
from critic.errors import CriticError
from critic.inference.bundle import save_training_result
from critic.models import build_model
from critic.training.checkpoints import CHECKPOINT_DIR
from critic.training.run import resolve_device
from critic.training.train import train
from support.data import (
    FROM_SCRATCH,
    random_batch,
    small_nbsvm_config,
    small_run_config,
    write_aclimdb,
)

# One thread, fixed: two runs compared weight for weight must sum in the same order, however
# busy the machine is (critic.system.ThreadGovernor sizes the threads to it otherwise).
QUIET = {"progress": False, "log": lambda _: None, "threads": 1}


@pytest.mark.slow
def test_training_writes_metrics_history_and_a_checkpoint(tmp_path, cache_dir):
    result = train(small_run_config(epochs=2), tmp_path / "run", cache_dir=cache_dir, **QUIET)
    metrics = result.metrics
    # The validation figures are the kept (best) epoch's; the test accuracy is a share of the
    # test reviews answered right, so times their number it is a whole number.
    assert metrics["val_accuracy"] == result.history[metrics["best_epoch"] - 1]["val_accuracy"]
    right = metrics["test_accuracy"] * metrics["test_reviews"]
    assert 0 <= right <= metrics["test_reviews"] and right == pytest.approx(round(right))
    assert 0 < metrics["test_loss"] < 5  # a log loss; 0.69 is a coin toss
    assert metrics["train_seconds"] > 0 and metrics["train_reviews_per_second"] > 0
    assert metrics["epochs"] == 2 and len(result.history) == 2
    assert {"train_loss", "val_loss", "val_accuracy"} <= set(result.history[0])
    assert (tmp_path / "run" / CHECKPOINT_DIR / "state.json").is_file()


@pytest.mark.slow
def test_the_same_command_twice_gives_the_same_metrics(tmp_path, cache_dir):
    first = train(small_run_config(epochs=2), tmp_path / "a", cache_dir=cache_dir, **QUIET)
    second = train(small_run_config(epochs=2), tmp_path / "b", cache_dir=cache_dir, **QUIET)
    strip = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # noqa: E731
    assert strip(first.history) == strip(second.history)
    assert first.metrics["test_loss"] == second.metrics["test_loss"]


@pytest.mark.slow
def test_early_stopping_keeps_the_best_epoch(tmp_path, cache_dir):
    # A learning rate this large makes validation loss climb after the first epochs.
    config = small_run_config(epochs=8, learning_rate=0.05, patience=1)
    result = train(config, tmp_path / "run", cache_dir=cache_dir, **QUIET)
    assert result.metrics["epochs"] < 8
    assert result.metrics["stop_reason"].startswith("early stop")
    best = min(result.history, key=lambda row: row["val_loss"])
    assert result.metrics["best_epoch"] == best["epoch"]
    assert result.metrics["val_loss"] == best["val_loss"]


class Interrupt(Exception):
    pass


@pytest.mark.slow
def test_an_interrupted_run_resumes_to_the_same_result(tmp_path, cache_dir):
    # With a warmed-up and decaying rate: the resumed run must take the schedule up where the
    # interrupted one left it.
    config = small_run_config(epochs=3, patience=5, warmup=0.3)
    straight = train(config, tmp_path / "straight", cache_dir=cache_dir, **QUIET)

    # Epoch lines are logged before that epoch's checkpoint is written: stopping at epoch 3's
    # line is like a Ctrl-C during its checkpoint, so the run must resume after epoch 2.
    with pytest.raises(KeyboardInterrupt):
        train(
            config,
            tmp_path / "resumed",
            cache_dir=cache_dir,
            progress=False,
            threads=1,
            log=interrupt_at("epoch 3:"),
        )
    state = json.loads((tmp_path / "resumed" / CHECKPOINT_DIR / "state.json").read_text())
    assert len(state["history"]) == 2
    lines = []
    resumed = train(
        config,
        tmp_path / "resumed",
        resume=True,
        cache_dir=cache_dir,
        progress=False,
        threads=1,
        log=lines.append,
    )
    assert any("continuing after epoch 2" in line for line in lines)
    strip = lambda history: [{k: v for k, v in row.items() if k != "seconds"} for row in history]  # noqa: E731
    assert strip(resumed.history) == strip(straight.history)
    assert resumed.metrics["test_loss"] == straight.metrics["test_loss"]
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name])


@pytest.mark.slow
def test_a_run_killed_between_the_two_renames_of_a_checkpoint_still_resumes(tmp_path, cache_dir):
    config = small_run_config(epochs=2, patience=5)
    with pytest.raises(KeyboardInterrupt):
        train(
            config,
            tmp_path / "run",
            cache_dir=cache_dir,
            progress=False,
            threads=1,
            log=interrupt_at("epoch 2:"),
        )
    # The state a kill leaves between "current -> .old" and "new -> current".
    live = tmp_path / "run" / CHECKPOINT_DIR
    live.rename(live.with_name(f".{live.name}.old"))
    lines = []
    result = train(
        config, tmp_path / "run", resume=True, cache_dir=cache_dir, progress=False, log=lines.append
    )
    assert any("continuing after epoch 1" in line for line in lines)
    assert result.metrics["epochs"] == 2


def interrupt_at(prefix):
    def log(line):
        if line.startswith(prefix):
            raise KeyboardInterrupt

    return log


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, cache_dir):
    from critic.errors import CriticError

    with pytest.raises(CriticError, match="nothing to resume"):
        train(small_run_config(), tmp_path / "none", resume=True, cache_dir=cache_dir, **QUIET)


def test_device_auto_is_the_cpu_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert resolve_device("auto").type == "cpu"
    from critic.errors import CriticError

    with pytest.raises(CriticError, match="no CUDA GPU"):
        resolve_device("cuda")


@pytest.mark.slow
def test_a_sagemaker_training_job_takes_hyperparameters_and_paths_from_the_environment(
    tmp_path, monkeypatch, cache_dir
):
    from support.data import write_aclimdb

    channel = tmp_path / "opt" / "ml" / "input" / "data" / "training"
    write_aclimdb(channel, per_class=12)
    model_dir = tmp_path / "opt" / "ml" / "model"
    model_dir.mkdir(parents=True)
    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("SM_CHANNEL_TRAINING", str(channel))
    monkeypatch.setenv(
        "SM_HPS",
        json.dumps(
            {"epochs": 1, "vocab-size": 100, "max_length": 40, "data": "aclImdb", "device": "cpu"}
        ),
    )
    monkeypatch.setenv("CRITIC_CACHE", str(cache_dir))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--no-progress"])
    assert exit_info.value.code in (0, None)
    config = json.loads((model_dir / "config.json").read_text())
    assert config["data"]["vocab_size"] == 100 and config["data"]["max_length"] == 40
    assert config["data"]["source"] == str(channel / "aclImdb")
    assert (model_dir / "bundle.json").is_file()
    assert not (model_dir / CHECKPOINT_DIR).exists()


def test_an_unknown_sagemaker_hyperparameter_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("SM_CHANNEL_TRAINING", str(tmp_path))
    monkeypatch.setenv("SM_HPS", json.dumps({"epochz": 3}))
    with pytest.raises(SystemExit) as exit_info:
        main(["train"])
    assert exit_info.value.code == 1
    assert "unknown hyper-parameter(s) in SM_HPS: epochz" in capsys.readouterr().err


@pytest.mark.slow
def test_a_saved_result_is_a_bundle(tmp_path, cache_dir):
    result = train(small_run_config(), tmp_path / "run", cache_dir=cache_dir, **QUIET)
    save_training_result(tmp_path / "run", result)
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000


@pytest.mark.slow
def test_every_trained_model_is_calibrated_on_validation(tmp_path, cache_dir):
    result = train(small_run_config(), tmp_path / "run", cache_dir=cache_dir, **QUIET)
    metrics = result.metrics
    assert metrics["temperature"] == pytest.approx(result.calibration.temperature, rel=1e-5)
    for key in ("val_ece_before", "val_ece_after", "test_ece_before", "test_ece_after"):
        assert 0.0 <= metrics[key] <= 1.0
    # Fitted on validation: there it can only help (up to the binning of the ECE).
    assert metrics["val_loss_calibrated"] <= metrics["val_loss"] + 1e-9
    assert metrics["rating_source"] == "probability"
    assert metrics["reliability"]["split"] == "test"


@pytest.mark.slow
def test_nbsvm_fits_in_one_go_and_records_what_it_chose(tmp_path, cache_dir):

    result = train(small_nbsvm_config(), tmp_path / "nbsvm", cache_dir=cache_dir, **QUIET)
    metrics = result.metrics
    assert result.vocab is None and result.history == []
    assert result.config.model.vocab_size == len(result.model) == metrics["ngrams"]
    assert result.config.model.c in [s["c"] for s in metrics["selection"]]
    assert metrics["test_accuracy"] > 0.6  # 300 reviews; the full split gives about 0.92
    assert metrics["val_loss_calibrated"] <= metrics["val_loss"] + 1e-9
    assert {"test_ece_before", "test_ece_after", "temperature"} <= set(metrics)
    with pytest.raises(CriticError, match="nothing to resume"):
        train(small_nbsvm_config(), tmp_path / "nbsvm", resume=True, **QUIET)


@pytest.mark.slow
def test_with_star_ratings_the_rating_is_learned_and_measured(tmp_path, cache_dir):

    folder = write_aclimdb(tmp_path, per_class=20)
    config = small_nbsvm_config()
    config = config.replace(data=config.data.replace(source=str(folder), max_reviews=None))
    result = train(config, tmp_path / "acl", cache_dir=cache_dir, **QUIET)
    assert result.calibration.rating_source == "stars"
    assert result.metrics["rating_source"] == "stars"
    assert 0 <= result.metrics["test_rating_mae"] <= 9
    assert -1 <= result.metrics["test_rating_spearman"] <= 1


def test_an_ensemble_cannot_be_trained_only_assembled(tmp_path):
    config = small_run_config()
    with pytest.raises(CriticError, match="critic ensemble"):
        train(config.replace(model=config.model.replace(name="ensemble")), tmp_path, **QUIET)


@pytest.mark.parametrize("name", FROM_SCRATCH)
@pytest.mark.slow
def test_every_model_trains_one_batch_into_a_bundle_that_answers(tmp_path, cache_dir, name):
    # 240 training reviews in one batch of 256: one optimiser step per architecture.
    config = small_run_config(batch_size=256)
    config = config.replace(
        model=ModelConfig(name=name, embedding_dim=8, hidden_dim=8, ngram_buckets=1000)
    )
    result = train(config, tmp_path / name, cache_dir=cache_dir, **QUIET)
    assert result.metrics["model"] == name and result.metrics["epochs"] == 1
    assert 0.0 <= result.metrics["test_accuracy"] <= 1.0
    save_training_result(tmp_path / name, result)
    from critic.inference.predictor import Predictor

    answer = Predictor.load(tmp_path / name).predict("A fine film.", explain=True)
    assert [w["word"] for w in answer["words"]] == ["a", "fine", "film"]
    assert max(abs(w["weight"]) for w in answer["words"]) == pytest.approx(1.0)


@pytest.mark.slow
def test_training_starts_from_a_glove_file_and_takes_its_dimension(tmp_path, cache_dir):
    words = ["the", "film", "good", "bad", "movie", "not-in-any-review"]
    rng = np.random.default_rng(0)
    glove = tmp_path / "glove.6d.txt"
    glove.write_text(
        "".join(f"{w} {' '.join(f'{v:.3f}' for v in rng.normal(size=6))}\n" for w in words)
    )
    config = small_run_config().replace(
        model=ModelConfig(name="gru", embedding_dim=32, hidden_dim=8)
    )
    config = config.replace(train=config.train.replace(embeddings=str(glove)))
    lines = []
    result = train(config, tmp_path / "run", cache_dir=cache_dir, progress=False, log=lines.append)
    assert result.config.model.embedding_dim == 6
    assert any(line.startswith("embeddings: 5 of 1,998 words found") for line in lines)
    assert result.metrics["embeddings_coverage"] == pytest.approx(5 / 1998, abs=1e-4)
    # One epoch moves the vectors only a little from where the file started them.
    row = result.vocab.index["film"]
    start = np.array(glove.read_text().splitlines()[1].split()[1:], dtype=np.float32)
    trained = result.model.embedding.weight[row].detach().numpy()
    assert np.abs(trained - start).max() < 0.1


def test_a_word_vector_file_that_fits_no_word_is_a_clear_error(tmp_path, cache_dir):
    from critic.errors import CriticError

    glove = tmp_path / "glove.txt"
    glove.write_text("zzzzqqq 1.0 2.0\n")
    config = small_run_config()
    config = config.replace(train=config.train.replace(embeddings=str(glove)))
    with pytest.raises(CriticError, match="has a vector for none of the vocabulary's words"):
        train(config, tmp_path / "run", cache_dir=cache_dir, **QUIET)


@pytest.mark.slow
def test_embeddings_word2vec_trains_vectors_on_the_training_split_first_once_per_seed(tmp_path):
    config = small_run_config().replace(
        model=ModelConfig(name="attention", embedding_dim=12, hidden_dim=8)
    )
    config = config.replace(train=config.train.replace(embeddings="word2vec"))
    cache = tmp_path / "cache"  # its own: no other test's vectors in it
    lines = []
    result = train(config, tmp_path / "run", cache_dir=cache, progress=False, log=lines.append)
    assert any(line.startswith("word2vec: skip-gram") for line in lines)
    assert result.config.model.embedding_dim == 12
    # word2vec keeps the words seen twice or more (min_count): most of the vocabulary.
    assert result.metrics["embeddings_coverage"] > 0.5
    # The same seed again: the vectors come from the cache, and the model is the same to the
    # last bit (word2vec on one thread; the training loop seeded).
    again = []
    second = train(config, tmp_path / "again", cache_dir=cache, progress=False, log=again.append)
    assert any(line.startswith("word2vec:") and "from the cache" in line for line in again)
    first_weights, second_weights = result.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)


def test_a_setting_the_model_refuses_fails_before_any_data_is_read(tmp_path):
    config = small_run_config()
    config = config.replace(
        data=config.data.replace(source=str(tmp_path / "not-there.csv")),
        model=ModelConfig(name="attention", pooling="max"),
    )
    # The data source does not exist either: the model's refusal must come first.
    with pytest.raises(CriticError, match="attention pools a review's words by attention"):
        train(config, tmp_path / "out", cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_an_output_that_cannot_be_a_folder_fails_before_any_data_is_read(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = small_run_config()
    config = config.replace(data=config.data.replace(source=str(tmp_path / "not-there.csv")))
    for out in (blocker, blocker / "bundle"):
        with pytest.raises(CriticError, match=r"cannot write the bundle to .*is not a folder"):
            train(config, out, cache_dir=tmp_path / "cache", log=lambda _: None)
    assert not (tmp_path / "cache").exists()


def test_a_nearly_full_disk_fails_before_any_data_is_read(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * 2**30, 10 * 2**30, 5 * 2**20))
    config = small_run_config()
    config = config.replace(data=config.data.replace(source=str(tmp_path / "not-there.csv")))
    with pytest.raises(CriticError, match="5 MB free on its disk") as error:
        train(config, tmp_path / "out", cache_dir=tmp_path / "cache", log=lambda _: None)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_the_adversarial_push_follows_the_embedding_gradient_with_norm_epsilon_per_review():
    from critic.training.neural import EmbeddingPush

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="gru", vocab_size=50, embedding_dim=8, hidden_dim=6))
    token_ids, lengths = random_batch(vocab_size=50)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    push = EmbeddingPush(model, epsilon=0.5)
    plain = model(token_ids, lengths)
    torch.nn.functional.binary_cross_entropy_with_logits(plain, labels).backward()
    embedded = push._embedded
    with push.pushed():
        vector = push._push
        pushed = model(token_ids, lengths)
    # epsilon per review, along the gradient; nothing on the padding.
    assert torch.allclose(vector.flatten(1).norm(dim=1), torch.full((6,), 0.5))
    gradient = embedded.grad.flatten(1)
    assert torch.allclose(
        torch.nn.functional.cosine_similarity(vector.flatten(1), gradient), torch.ones(6)
    )
    padding = token_ids == 0
    assert padding.any() and bool((vector[padding] == 0).all())
    # A small push the way of the gradient raises the loss, and the push ends with the block.
    loss = torch.nn.functional.binary_cross_entropy_with_logits
    assert loss(pushed, labels) > loss(plain, labels)
    assert torch.equal(model(token_ids, lengths), plain)
    push.close()
    with pytest.raises(CriticError, match="needs a model with a word embedding"):
        EmbeddingPush(torch.nn.Linear(2, 1), epsilon=1.0)


@pytest.mark.slow
def test_adversarial_training_runs_and_gives_the_same_model_for_a_seed(tmp_path, cache_dir):
    config = small_run_config(adversarial=1.0)
    first = train(config, tmp_path / "a", cache_dir=cache_dir, **QUIET)
    second = train(config, tmp_path / "b", cache_dir=cache_dir, **QUIET)
    plain = train(small_run_config(), tmp_path / "plain", cache_dir=cache_dir, **QUIET)
    weights = first.model.state_dict()
    assert all(torch.equal(weights[k], second.model.state_dict()[k]) for k in weights)
    assert not all(torch.equal(weights[k], plain.model.state_dict()[k]) for k in weights)
    assert first.config.train.adversarial == 1.0
    with pytest.raises(CriticError, match="adversarial must not be negative"):
        small_run_config(adversarial=-1.0)


def test_the_ngram_branch_learns_at_its_own_rate_and_other_models_refuse_one():
    from critic.config import TrainConfig
    from critic.training.neural import build_optimizer

    config = ModelConfig(
        name="attention-ngrams", vocab_size=50, embedding_dim=8, hidden_dim=6, ngram_buckets=64
    )
    model = build_model(config)
    plain = build_optimizer(model, TrainConfig(learning_rate=0.002))
    assert [group["lr"] for group in plain.param_groups] == [0.002]
    split = build_optimizer(model, TrainConfig(learning_rate=0.002, ngram_learning_rate=0.01))
    rest, ngrams = split.param_groups
    assert (rest["lr"], ngrams["lr"]) == (0.002, 0.01)
    # Every parameter in exactly one group; the n-gram table's at the n-gram rate.
    grouped = [id(p) for group in split.param_groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    assert {id(p) for p in ngrams["params"]} == {id(p) for p in model.ngrams.parameters()}
    with pytest.raises(CriticError, match="ngram_learning_rate must be positive"):
        TrainConfig(ngram_learning_rate=0.0)


def test_an_ngram_learning_rate_for_a_model_without_ngrams_fails_before_any_data(tmp_path):
    config = small_run_config(ngram_learning_rate=0.01)
    config = config.replace(data=config.data.replace(source=str(tmp_path / "not-there.csv")))
    with pytest.raises(CriticError, match="n-gram branch") as error:
        train(config, tmp_path / "out", cache_dir=tmp_path / "cache", **QUIET)
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()


def small_gru_config(**train_changes):
    config = small_run_config(**train_changes)
    return config.replace(model=ModelConfig(name="gru", bidirectional=True, hidden_dim=16))


@pytest.mark.slow
def test_pretraining_reads_the_training_texts_first_and_gives_the_same_model_for_a_seed(
    tmp_path, cache_dir
):
    lines = []
    config = small_gru_config(pretrain_epochs=2)
    first = train(
        config, tmp_path / "a", cache_dir=cache_dir, progress=False, log=lines.append, threads=1
    )
    second = train(config, tmp_path / "b", cache_dir=cache_dir, **QUIET)
    plain = train(small_gru_config(), tmp_path / "plain", cache_dir=cache_dir, **QUIET)
    pretrained = [line for line in lines if line.startswith("pre-train epoch")]
    assert len(pretrained) == 2 and all("language-model loss" in line for line in pretrained)
    # Epoch 2's loss is below epoch 1's: it learned from the text.
    losses = [float(line.split("loss ")[1].split()[0]) for line in pretrained]
    assert losses[1] < losses[0]
    metrics = first.metrics
    assert metrics["pretrain_epochs"] == 2 and metrics["pretrain_seconds"] > 0
    assert metrics["pretrain_loss"] == pytest.approx(losses[1], abs=1e-4)
    weights = first.model.state_dict()
    assert all(torch.equal(weights[k], second.model.state_dict()[k]) for k in weights)
    assert not torch.equal(weights["encoder.layers.0.0.weight_hh_l0"],
                           plain.model.state_dict()["encoder.layers.0.0.weight_hh_l0"])  # fmt: skip
    assert plain.metrics["pretrain_epochs"] == 0 and plain.metrics["pretrain_seconds"] is None
    # The bundle keeps the figures.
    save_training_result(tmp_path / "bundle", first)
    saved = json.loads((tmp_path / "bundle" / "metrics.json").read_text())
    assert saved["pretrain_epochs"] == 2


@pytest.mark.slow
def test_a_pretrained_run_resumes_without_pretraining_again_to_the_same_result(tmp_path, cache_dir):
    config = small_gru_config(pretrain_epochs=1, epochs=2, patience=5)
    straight = train(config, tmp_path / "straight", cache_dir=cache_dir, **QUIET)
    with pytest.raises(KeyboardInterrupt):
        train(
            config, tmp_path / "resumed", cache_dir=cache_dir, progress=False, threads=1,
            log=interrupt_at("epoch 2:"),
        )  # fmt: skip
    lines = []
    resumed = train(
        config, tmp_path / "resumed", resume=True, cache_dir=cache_dir, progress=False, threads=1,
        log=lines.append,
    )  # fmt: skip
    assert not any(line.startswith("pre-train") for line in lines)  # its effect is in the weights
    assert resumed.metrics["test_loss"] == straight.metrics["test_loss"]
    assert resumed.metrics["pretrain_epochs"] == 1 and resumed.metrics["pretrain_seconds"] is None
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name])


@pytest.mark.parametrize(
    "model, message",
    [
        (ModelConfig(name="cnn-lstm"), "cnn-lstm has no recurrent encoder reading its word"),
        (ModelConfig(), "lstm has no recurrent encoder reading its word embeddings"),
        (ModelConfig(name="nbsvm"), "nbsvm is fitted in one go: it has no language model"),
        (
            ModelConfig(name="bilstm", num_layers=2),
            "bidirectional encoder of 2 layers would see the words it predicts",
        ),
    ],
)
def test_pretraining_a_model_it_cannot_fails_before_any_data_is_read(tmp_path, model, message):
    config = small_run_config(pretrain_epochs=1).replace(model=model)
    config = config.replace(data=config.data.replace(source=str(tmp_path / "not-there.csv")))
    with pytest.raises(CriticError, match=message) as error:
        train(config, tmp_path / "out", cache_dir=tmp_path / "cache", **QUIET)
    assert "\n" not in str(error.value) and not (tmp_path / "out").exists()
    with pytest.raises(CriticError, match="pretrain_epochs must not be negative"):
        small_run_config(pretrain_epochs=-1)


def test_a_warmed_up_rate_rises_to_its_peak_then_falls_to_zero_at_the_last_step():
    from critic.training.neural import StepRates

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=0.5)
    rates = StepRates(optimizer, 0.2, steps_per_epoch=5, epochs=2)  # 10 steps, 2 rising
    seen = []
    for epoch in (1, 2):
        for batch in range(5):
            rates.set(epoch, batch)
            seen.append(optimizer.param_groups[0]["lr"])
    assert seen[:2] == [0.25, 0.5]
    assert seen[2:] == pytest.approx([0.5 * (10 - step) / 8 for step in range(2, 10)])
    assert seen[-1] == pytest.approx(0.5 / 8) and max(seen) == 0.5
    constant = StepRates(optimizer, None, steps_per_epoch=5, epochs=2)
    optimizer.param_groups[0]["lr"] = 0.5
    constant.set(2, 3)
    assert optimizer.param_groups[0]["lr"] == 0.5


def test_a_warmup_that_is_not_a_share_of_the_steps_is_refused():
    from critic.config import TrainConfig
    from critic.errors import CriticError

    with pytest.raises(CriticError, match="warmup must be a share of the steps"):
        TrainConfig(warmup=1.0)
