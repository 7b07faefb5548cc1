"""One spelling per concept across every command: the options read from the Typer app itself.

A concept (weights, batch size, output, dataset, ...) has one spelling wherever a command takes it, and
no command uses another spelling for it; boolean options are flags (help shows ``--json``, not ``--json
<bool>``); benchmark names and architectures are choices (a bad value is a usage error, exit 2); the
model options of ``predict`` and ``eval --weights`` default to :class:`PredictConfig`'s defaults.
"""

from __future__ import annotations

import dataclasses
from enum import Enum

import pytest
import typer
from typer.testing import CliRunner

from famicli.cli import options
from famicli.cli.app import app

runner = CliRunner()

# parameter name -> its options, everywhere: (spellings, is a choice, is a flag); None: not checked
CONCEPTS = {
    "weights": (["--weights", "-w"], False, False),
    "variant": (["--variant"], True, False),
    "device": (["--device"], False, False),
    "dtype": (["--dtype"], None, False),  # profile takes a comma-separated list
    "batch_size": (["--batch-size"], False, False),
    "dataset": (["--dataset"], True, False),
    "root": (["--root"], False, False),
    "out": (["--out", "-o"], False, False),
    "seed": (["--seed"], False, False),
    "json_out": (["--json"], False, True),
    "quiet": (["--quiet", "-q"], False, True),
}
# spellings other tools use for these concepts; famipose uses the ones above
FORBIDDEN = {
    "--batch",
    "--bs",
    "-b",
    "--batchsize",
    "--data",
    "--data-dir",
    "--data-root",
    "--dataset-dir",
    "--dataset-root",
    "--output",
    "--output-dir",
    "--out-dir",
    "--outdir",
    "--weight",
    "--ckpt",
    "--checkpoint",
    "--model",
    "--gpus",
    "--silent",
    "--json-out",
    "--precision",
    "--arch",
}


def _commands(command=None, path=()):
    """(command line, click command) of every famipose command, groups excluded."""
    command = command if command is not None else typer.main.get_command(app)
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        yield " ".join(path), command
        return
    for name, sub in subcommands.items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands())
OPTIONS = [(name, p) for name, command in COMMANDS.items() for p in command.params if p.param_type_name == "option"]


def test_every_command_is_listed():
    assert set(COMMANDS) == {
        "info",
        "predict",
        "eval",
        "profile",
        "train",
        "data synth",
        "data check",
        "viz offsets",
        "viz mi",
        "viz heatmaps",
    }


def _check_spelling(command: str, param) -> None:
    spellings = [*param.opts, *param.secondary_opts]
    assert not FORBIDDEN & set(spellings), f"{command}: {spellings}: famipose spells this concept differently"
    for concept, (expected, choice, is_flag) in CONCEPTS.items():
        if param.name == concept or set(spellings) & set(expected):
            assert (param.name, param.opts) == (concept, expected), f"{command}: {param.name} {spellings}"
            assert not param.secondary_opts, f"{command}: {spellings}"
            if choice is not None:
                assert param.type_descriptor.is_choice == choice, f"{command}: {param.name}"
            assert param.is_flag == is_flag, f"{command}: {param.name}"


@pytest.mark.parametrize(("command", "param"), OPTIONS, ids=[f"{c}:{p.name}" for c, p in OPTIONS])
def test_one_spelling_per_concept(command, param):
    _check_spelling(command, param)


@pytest.mark.parametrize(("command", "param"), OPTIONS, ids=[f"{c}:{p.name}" for c, p in OPTIONS])
def test_boolean_options_are_flags(command, param):
    annotation = param.type_descriptor.annotation
    if annotation is bool:
        assert param.is_flag, f"{command}: {param.opts} takes a value"
        assert param.display_type_rich(typer.Context(COMMANDS[command])) == "", f"{command}: {param.opts}"
    elif param.is_flag:
        pytest.fail(f"{command}: {param.opts} is a flag but not a bool")
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        assert param.type_descriptor.is_choice  # an enum: Typer checks the value (exit 2)


@pytest.mark.parametrize("command", [[], *(c.split() for c in COMMANDS), ["data"], ["viz"]], ids=str)
def test_help_shows_flags_without_a_type(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert "--help" in result.output


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_prints_json(command):
    assert "--json" in {o for p in COMMANDS[command].params for o in p.opts}


def test_adding_a_forbidden_spelling_fails():
    """The check above catches a command that grows ``--batch`` (or any spelling of a concept)."""
    extra = typer.Typer(add_completion=False)

    @extra.command()
    def demo(batch: int = typer.Option(1, "--batch"), weights: str = typer.Option("", "--weight")) -> None:
        """A command spelled the other way."""

    params = [p for p in typer.main.get_command(extra).params if p.param_type_name == "option"]
    for param in params:
        with pytest.raises(AssertionError):
            _check_spelling("demo", param)


def test_choices_match_the_library():
    from famicli.config import VARIANTS
    from famicli.inference.cached import SHARES
    from famicli.inference.predictor import MODES
    from famicli.runtime import DTYPES

    assert {v.value for v in options.Variant} == set(VARIANTS)
    assert [d.value for d in options.Dtype] == list(DTYPES)
    assert [m.value for m in options.Mode] == list(MODES)
    assert [s.value for s in options.Share] == list(SHARES)
    assert {d.value for d in options.TrackingDataset} < {d.value for d in options.Dataset}


@pytest.mark.parametrize("command", ["predict", "eval"])
def test_model_option_defaults_are_predict_config_defaults(command):
    """predict and eval --weights build one PredictConfig from their options: same defaults, same names."""
    from famicli.inference.predictor import PredictConfig

    defaults = {f.name: f.default for f in dataclasses.fields(PredictConfig)}
    shared = {p.name: p.default for p in COMMANDS[command].params if p.name in defaults}
    assert {
        "boxes",
        "box_threshold",
        "device",
        "dtype",
        "flip",
        "batch_size",
        "mode",
        "chunk",
        "max_shift",
        "share",
    } <= set(shared)
    for name, default in shared.items():
        assert (default.value if isinstance(default, Enum) else default) == defaults[name], name
