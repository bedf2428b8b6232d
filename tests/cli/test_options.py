"""Command-line options made from the typed configs: one declaration per setting."""

import dataclasses
from dataclasses import dataclass

import pytest
import typer
from typer.testing import CliRunner

from critic.cli import app
from critic.cli.options import by_section, options_of, run_options, with_options
from critic.cli.train import RUN_OPTIONS
from critic.config import DataConfig, ModelConfig, RunConfig, TrainConfig, setting
from critic.errors import CriticError
from critic.serving.settings import ServerSettings


def command_options(*path: str) -> dict[str, list]:
    """``--name``: the click options of ``critic PATH...`` that answer to it."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    named: dict[str, list] = {}
    for parameter in command.params:
        for flag in parameter.opts:
            named.setdefault(flag, []).append(parameter)
    return named


def user_fields(config_class):
    return [f for f in dataclasses.fields(config_class) if f.metadata.get("option", True)]


@pytest.mark.parametrize(("section", "config_class"), [
    ("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig),
])  # fmt: skip
def test_every_setting_a_user_sets_has_exactly_one_train_option_with_its_help(
    section, config_class
):
    options = command_options("train")
    for config_field in user_fields(config_class):
        name = config_field.metadata.get("option")
        flag = "--" + (name if isinstance(name, str) else config_field.name).replace("_", "-")
        assert len(options[flag]) == 1, flag
        help_text = config_field.metadata["help"]
        assert help_text and options[flag][0].help == help_text, flag


def test_derived_settings_have_no_option_and_the_recent_ones_do():
    options = command_options("train")
    assert "--ngram-dim" in options  # a field that once had no option
    assert [f.name for f in dataclasses.fields(ModelConfig) if not f.metadata["option"]] == [
        "vocab_size"  # filled in from the data's vocabulary
    ]
    assert "--data" in options and "--source" not in options
    assert "--model" in options and "--name" not in options


def test_the_same_setting_reads_the_same_on_every_command():
    helps = {
        command: command_options(*command.split())["--max-reviews"][0].help
        for command in ("train", "embeddings train", "evaluate", "compare")
    }
    assert set(helps.values()) == {DataConfig.__dataclass_fields__["max_reviews"].metadata["help"]}


def test_every_serve_option_comes_from_server_settings_with_its_help():
    options = command_options("serve")
    for config_field in user_fields(ServerSettings):
        flag = "--" + config_field.name.replace("_", "-")
        assert len(options[flag]) == 1 and options[flag][0].help == config_field.metadata["help"]
    assert "--device" not in options and "--seed" not in options  # the environment only


def test_a_setting_added_to_the_server_settings_becomes_an_option_and_a_variable():
    @dataclass(frozen=True)
    class Later(ServerSettings):
        queue_size: int = setting(16, "Most requests waiting.")

    added = [option for option in options_of(Later) if option.name == "queue_size"]
    assert len(added) == 1 and added[0].kind is int and added[0].help == "Most requests waiting."
    assert Later.from_env({"CRITIC_QUEUE_SIZE": "32"}).queue_size == 32


def test_sagemaker_strings_are_typed_by_the_same_declarations():
    given = {"epochs": "3", "dropout": "0.25", "bidirectional": "true", "c": 2,
             "embeddings": "none", "model": "gru", "data": "reviews.csv", "max_seconds": None}  # fmt: skip
    sections = by_section(RUN_OPTIONS, given)
    assert sections == {
        "data": {"source": "reviews.csv"},
        "model": {"name": "gru", "dropout": 0.25, "bidirectional": True, "c": 2.0},
        "train": {"epochs": 3, "embeddings": None},  # "none" overrides a recipe's embeddings
    }
    assert type(sections["train"]["epochs"]) is int and type(sections["model"]["c"]) is float
    with pytest.raises(CriticError, match=r"^epochs: expected an integer, got 'three'$"):
        by_section(RUN_OPTIONS, {"epochs": "three"})
    with pytest.raises(CriticError, match=r"^bidirectional: expected true or false, got 'ture'$"):
        by_section(RUN_OPTIONS, {"bidirectional": "ture"})
    # The words of critic.config.parse_boolean, as for CRITIC_* variables and ?explain=.
    for word, meant in (("yes", True), ("On", True), ("no", False), ("OFF", False)):
        assert by_section(RUN_OPTIONS, {"bidirectional": word}) == {
            "model": {"bidirectional": meant}
        }


def test_every_typed_setting_makes_a_config_the_run_accepts():
    sections = by_section(RUN_OPTIONS, {o.name: o.default for o in RUN_OPTIONS})
    assert RunConfig.from_dict(sections) == RunConfig()


def test_a_field_of_any_settings_class_becomes_an_option_with_its_type_and_help():
    @dataclass(frozen=True)
    class Throwaway:
        width: int = setting(3, "How wide.")
        label: str | None = setting(None, "What to call it.", option="name")
        loud: bool = setting(False, "Shout.")
        secret: str = setting("x", "Never on the command line.", option=False)

    received = {}
    tiny = typer.Typer()

    @tiny.command()
    @with_options(given=options_of(Throwaway))
    def show(times: int = 1, *, given: dict) -> None:
        """Show the settings."""
        received.update(given, times=times)

    help_text = CliRunner().invoke(tiny, ["--help"], env={"COLUMNS": "200"}).output
    assert "How wide." in help_text and "--name" in help_text and "--loud" in help_text
    assert "--secret" not in help_text and "--label" not in help_text
    result = CliRunner().invoke(tiny, ["--width", "5", "--loud", "--times", "2"])
    assert result.exit_code == 0, result.output
    assert received == {"width": 5, "name": None, "loud": True, "times": 2}
    bad = CliRunner().invoke(tiny, ["--width", "wide"], env={"COLUMNS": "200"})
    assert bad.exit_code == 2 and "Invalid value for '--width'" in bad.output


def test_an_option_declared_twice_is_refused_when_the_command_is_made():
    with pytest.raises(ValueError, match="show: option\\(s\\) declared twice: epochs"):

        @with_options(settings=run_options())
        def show(epochs: int = 1, *, settings: dict) -> None:
            """Two --epochs."""


def test_a_setting_of_a_type_the_command_line_cannot_parse_is_refused():
    @dataclass(frozen=True)
    class Odd:
        sizes: tuple = setting((), "Several.")

    with pytest.raises(TypeError, match="a setting must be a bool, int, float or str"):
        options_of(Odd)
