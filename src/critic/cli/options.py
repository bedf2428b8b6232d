"""Command-line options built from the typed configs: one declaration per setting.

A config field declared with :func:`critic.config.setting` carries its type, default and help;
:func:`options_of` turns each field a user may set into an :class:`Option`, and
:func:`with_options` gives a Typer command one ``--option`` per setting (Typer reads the
command's ``__signature__``). The same :class:`Option` types the strings SageMaker passes as
hyper-parameters, so a new config field is a new option, and a new hyper-parameter, with no
edit here or in the CLI.

Every option defaults to ``None``: "not given", so that a model's recipe (then the config's
default) decides; ``--help`` shows the config's default.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any

import typer

from critic.config import RunConfig, parse_value, setting_type


@dataclasses.dataclass(frozen=True)
class Option:
    """One setting as the command line (and SageMaker's SM_HPS) names and types it."""

    name: str
    """The option's name, ``--`` and dashes aside (``data`` for ``DataConfig.source``); also the
    hyper-parameter's name."""
    field: str
    """The config attribute it sets."""
    section: str | None
    """``data``, ``model`` or ``train`` for a training setting; None for a flat settings class."""
    kind: type
    default: Any
    help: str
    none_word: str | None = None
    hidden: bool = False
    show_default: bool = True

    def parameter(self) -> inspect.Parameter:
        """The keyword parameter Typer turns into ``--name`` (``--name/--no-name`` for a bool)."""
        shown = self.show_default and self.default is not None
        info = typer.Option(
            help=self.help,
            hidden=self.hidden,
            show_default=str(self.default) if shown else False,
            rich_help_panel=f"{self.section.capitalize()} settings" if self.section else None,
        )
        return inspect.Parameter(
            self.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[self.kind | None, info],
        )

    def parse(self, value: Any) -> Any:
        """``value`` as the setting's type: from the command line (typed already) or a
        SageMaker hyper-parameter (a string, or what JSON made of it)."""
        return parse_value(value, self.kind, self.name)


def options_of(config_class: type, section: str | None = None) -> list[Option]:
    """One :class:`Option` per field of ``config_class`` that a user may set, in field order.

    A field made without :func:`~critic.config.setting` is an option too, with no help (the
    tests ask for help on every option), so that a field added to a settings class is never
    silently missing from the command line.
    """
    hints = typing.get_type_hints(config_class)
    options = []
    for config_field in dataclasses.fields(config_class):
        chosen = config_field.metadata.get("option", True)
        if chosen is False:
            continue
        options.append(
            Option(
                name=chosen if isinstance(chosen, str) else config_field.name,
                field=config_field.name,
                section=section,
                kind=setting_type(hints[config_field.name]),
                default=config_field.default,
                help=config_field.metadata.get("help", ""),
                none_word=config_field.metadata.get("none_word"),
            )
        )
    return options


def run_options() -> list[Option]:
    """Every setting of a training run (``RunConfig``'s data, model and train sections)."""
    hints = typing.get_type_hints(RunConfig)
    return [
        option
        for section in dataclasses.fields(RunConfig)
        for option in options_of(hints[section.name], section.name)
    ]


def pick(options: Iterable[Option], *names: str, **changes: Any) -> list[Option]:
    """The options called ``names``, in that order (``changes``, e.g. ``hidden=True``, applied)."""
    by_name = {option.name: option for option in options}
    return [dataclasses.replace(by_name[name], **changes) for name in names]


def by_section(options: Sequence[Option], values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings given in ``values`` (by option name), typed, by section and field name.

    Options not given (None) are left out, so the model's recipe and the config's defaults
    fill them; an option's ``none_word`` is given as None, overriding the recipe.
    """
    sections: dict[str, dict[str, Any]] = {}
    for option in options:
        value = values.get(option.name)
        if value is None:
            continue
        section = sections.setdefault(option.section or "", {})
        if option.none_word and isinstance(value, str) and value.lower() == option.none_word:
            section[option.field] = None
        else:
            section[option.field] = option.parse(value)
    return sections


def settings_of(options: Sequence[Option], config: Any) -> dict[str, Any]:
    """What ``config`` (a ``RunConfig``) holds for each of a run's ``options``, by option name:
    the inverse of :func:`by_section`, e.g. the parameters an experiment tracker records."""
    return {
        option.name: getattr(getattr(config, option.section), option.field)
        for option in options
        if option.section is not None
    }


def given(options: Sequence[Option], values: dict[str, Any]) -> dict[str, Any]:
    """The settings of one flat settings class (``ServerSettings``, ``Word2VecSettings``...)
    given in ``values``, typed, by field name: what its constructor takes, the defaults
    filling the rest. :func:`by_section` does the same for a run's three sections."""
    return by_section(options, values).get("", {})


def with_options(**groups: Sequence[Option]) -> Callable[[Callable], Callable]:
    """Decorator: give a Typer command one option per :class:`Option` of each group.

    The command declares each group as a parameter of the group's name (``settings: dict``)
    and receives the group's values there, by option name, None where not given::

        @app.command()
        @with_options(settings=run_options())
        def train(out: ..., settings: dict) -> None: ...
    """

    def decorate(command: Callable) -> Callable:
        signature = inspect.signature(command, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name not in groups]
        added = [option.parameter() for options in groups.values() for option in options]
        names = [parameter.name for parameter in own + added]
        clashes = sorted({name for name in names if names.count(name) > 1})
        if clashes:
            raise ValueError(f"{command.__name__}: option(s) declared twice: {', '.join(clashes)}")

        def run(**values: Any) -> Any:
            for group, options in groups.items():
                values[group] = {option.name: values.pop(option.name) for option in options}
            return command(**values)

        for attribute in ("__name__", "__qualname__", "__doc__", "__module__"):
            setattr(run, attribute, getattr(command, attribute))
        keyword = inspect.Parameter.KEYWORD_ONLY
        run.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[parameter.replace(kind=keyword) for parameter in own + added]
        )
        return run

    return decorate
