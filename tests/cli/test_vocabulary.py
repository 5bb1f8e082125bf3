"""Every command, walked through its --help: one name and one meaning per option across the CLI."""

from __future__ import annotations

import types
import typing

import pytest
import typer
from typer.testing import CliRunner

from reslab.cli import _load_commands, app

_load_commands()
ROOT = typer.main.get_command(app)

# Spellings that the shared vocabulary replaced: a command using one of them is a regression.
RETIRED = {"--batch": "--batch-size", "--bs": "--batch-size", "--gpu": "--device", "--dev": "--device",
           "--as-json": "--json", "--json-out": "--json", "--topk": "--top-k", "--num-workers": "--workers"}  # fmt: skip


# typer carries its own copy of click, so types are recognised by name, not isinstance
def walk(command, path: tuple[str, ...] = ()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))


def is_group(cmd) -> bool:
    return hasattr(cmd, "commands")


def annotation(param):
    """The Python type a parameter takes, Optional[...] unwrapped."""
    hint = param.type_descriptor.annotation
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1 else hint


def is_int(param) -> bool:
    return annotation(param) is int


def options(cmd) -> dict:
    return {name: p for p in cmd.params if type(p).__name__ == "TyperOption" for name in p.opts}


COMMANDS = [(path, cmd) for path, cmd in walk(ROOT) if path]
LEAVES = [(path, cmd) for path, cmd in COMMANDS if not is_group(cmd)]
IDS = [" ".join(path) for path, _ in LEAVES]


@pytest.mark.parametrize("path, cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_renders_its_help_at_80_columns(path, cmd):
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, prog_name="reslab")
    assert result.exit_code == 0, result.output
    assert "Usage: reslab " + " ".join(path) in " ".join(result.output.split())
    assert "<bool>" not in result.output, "a flag takes no value: no type beside it"
    assert (cmd.help or "").strip(), f"`reslab {' '.join(path)}` has no description"


@pytest.mark.parametrize("path, cmd", LEAVES, ids=IDS)
def test_shared_options_mean_the_same_everywhere(path, cmd):
    opts = options(cmd)
    where = f"`reslab {' '.join(path)}`"
    for old, new in RETIRED.items():
        assert old not in opts, f"{where} spells {new} as {old}"
    if "--json" in opts:
        o = opts["--json"]
        assert o.is_flag and o.name == "as_json" and o.default is False, f"{where}: --json must be the flag `as_json`"
    if "-k" in opts:
        o = opts["-k"]
        assert is_int(o) and not o.multiple, f"{where}: -k must be one integer"
        assert "--top-k" in o.opts, f"{where}: -k is short for --top-k"
    if "--device" in opts:
        o = opts["--device"]
        assert annotation(o) is str and o.default in ("auto", None), f"{where}: --device defaults to auto"
        assert "auto" in (o.help or ""), f"{where}: --device's help must state the auto policy"
    if "--batch-size" in opts:
        o = opts["--batch-size"]
        assert is_int(o) and o.min == 1, f"{where}: --batch-size is an int >= 1"
    for name in ("--workers", "--seed"):
        if name in opts:
            assert is_int(opts[name]), f"{where}: {name} is an int"
    if "--set" in opts:
        assert opts["--set"].multiple, f"{where}: --set is repeatable"
    if "--weights" in opts:
        assert "-w" in opts["--weights"].opts, f"{where}: --weights has the short form -w"


def test_one_option_name_one_meaning_across_commands():
    """A long option is a flag everywhere or takes a value everywhere; a short option stands for one long one."""
    kinds, shorts, spellings = {}, {}, {}
    for path, cmd in LEAVES:
        for p in cmd.params:
            if type(p).__name__ != "TyperOption" or p.hidden:  # hidden ones are old spellings kept working
                continue
            where = f"reslab {' '.join(path)}"
            longs = tuple(o for o in p.opts if o.startswith("--"))
            for name in longs:
                kind = "a flag" if p.is_flag else "an option with a value"
                seen = kinds.setdefault(name, (kind, where))
                assert seen[0] == kind, f"{name} is {kind} in `{where}` but {seen[0]} in `{seen[1]}`"
            for short in (o for o in p.opts if not o.startswith("--")):
                seen = shorts.setdefault(short, (longs, where))
                assert seen[0] == longs, f"{short} means {longs} in `{where}` but {seen[0]} in `{seen[1]}`"
            seen = spellings.setdefault(p.name, (longs, where))
            assert seen[0] == longs, f"`{p.name}` is spelled {longs} in `{where}` but {seen[0]} in `{seen[1]}`"


def test_root_version_and_help_flags():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"})
    assert "--version" in result.output and "<bool>" not in result.output
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("reslab ") and "torch" in version.output


def test_old_names_still_work_but_are_hidden():
    aliases = {"verify-data": ("data", "verify"), "eval": ("eval-classifier",), "compare": ("compare-images",)}
    for old, new in aliases.items():
        alias = ROOT.commands[old]
        target = ROOT
        for part in new:
            target = target.commands[part]
        assert alias.hidden and alias.callback.__name__ == target.callback.__name__
        assert [p.name for p in alias.params] == [p.name for p in target.params]
    listed = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"}).output
    assert "verify-data" not in listed and "eval-classifier" in listed and "compare-images" in listed


def test_choices_match_the_library():
    from reslab.cli.data import Augment, DataFormat
    from reslab.cli.experiments import PresetName
    from reslab.cli.images import CompareMethod
    from reslab.cli.report import EmbeddingMap
    from reslab.cli.search import EmbedMethod
    from reslab.data.config import AUGMENTS, FORMATS
    from reslab.features.compare import COMPARE_METHODS
    from reslab.report.embedding_map import METHODS as MAPS
    from reslab.embeddings import METHODS
    from reslab.experiments.common import PRESETS

    assert [m.value for m in DataFormat] == list(FORMATS)
    assert [m.value for m in Augment] == list(AUGMENTS)
    assert {m.value for m in CompareMethod} == set(COMPARE_METHODS)
    assert [m.value for m in EmbeddingMap] == list(MAPS)
    assert {m.value for m in EmbedMethod} == set(METHODS)
    assert {m.value for m in PresetName} == set(PRESETS)


def test_a_bad_choice_is_one_usage_error():
    result = CliRunner().invoke(app, ["report", "run", "--embedding", "umap"])
    assert result.exit_code == 2 and "umap" in result.output and "Traceback" not in result.output


def test_comma_separated_choices_are_checked_in_one_place():
    from reslab.cli.options import comma_choices
    from reslab.errors import ReslabError

    assert comma_choices(" flat, ivf ,", "--kinds", ("flat", "ivf", "hnsw")) == ["flat", "ivf"]
    for bad, words in (("flat,lsh", "unknown 'lsh'"), (" , ", "nothing given")):
        with pytest.raises(ReslabError, match=f"--kinds .*{words}; give some of flat, ivf, hnsw"):
            comma_choices(bad, "--kinds", ("flat", "ivf", "hnsw"))
    result = CliRunner().invoke(app, ["experiment", "shortcuts", "--options", "A,D"])
    assert "unknown 'D'" in str(result.exception)  # main() prints a ReslabError as one line, exit 1
