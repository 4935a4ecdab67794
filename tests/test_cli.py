"""The `txsim` command: listings, JSON, plugin commands and error display."""

from __future__ import annotations

import json

from click.testing import CliRunner

import txsim_core
from txsim_core.cli import cli, main


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_list_models_table():
    result = run("list-models")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split() == ["Kind", "Name", "Provider", "Summary"]
    assert set(lines[1]) <= {"-", " "}
    rows = [line.split()[:4] for line in lines[2:]]
    assert [r[0] for r in rows if r[1] == "ideal"] == ["dac", "adc", "mapping", "solver", "update"]
    assert all(r[2:4] == ["txsim", txsim_core.__version__] for r in rows)  # builtins only here
    # columns are aligned: every summary starts at the same offset
    assert len({line.index(line.split()[4]) for line in lines[2:]}) == 1


def test_list_models_json_has_required_keys():
    result = run("list-models", "--json")
    records = json.loads(result.output)
    assert [r["kind"] for r in records if r["name"] == "ideal"] == [
        "dac",
        "adc",
        "mapping",
        "solver",
        "update",
    ]
    for record in records:
        assert {"kind", "name", "distribution", "version", "summary", "params"} <= record.keys()
        assert record["distribution"] == "txsim" and record["version"] == txsim_core.__version__
    mapping = next(r for r in records if r["kind"] == "mapping")
    g_min = next(p for p in mapping["params"] if p["name"] == "g_min")
    assert g_min == {
        "name": "g_min",
        "type": "float",
        "default": 1e-6,
        "unit": "S",
        "allowed": "a number in (0, 1]",
        "help": "Lowest conductance of a device.",
    }


def test_list_models_kind_filter_is_repeatable():
    result = run("list-models", "--kind", "adc", "--kind", "solver", "--json")
    kinds = [r["kind"] for r in json.loads(result.output)]
    assert set(kinds) == {"adc", "solver"} and kinds == sorted(kinds, key=["adc", "solver"].index)
    bad = run("list-models", "--kind", "adcs")
    assert bad.exit_code == 2 and "'adcs' is not one of" in bad.output


def test_list_models_params_shows_type_default_unit_range_help():
    result = run("list-models", "--kind", "dac", "--params")
    assert "v_read: float = 1.0 [V]  allowed: a number in (0, 10]" in result.output
    assert "Voltage of a full-scale input" in result.output
    assert "(no parameters)" in run("list-models", "--kind", "adc", "--params").output


def test_plugins_lists_builtin_and_installed(fake_plugins):
    fake_plugins("ok", "broken")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        txsim_core.reset_registry()
        records = {r["name"]: r for r in json.loads(run("plugins", "--json").output)}
        table = run("plugins").output
    assert records["txsim"]["status"] == "loaded"
    assert records["fake-ok"] == {
        "name": "fake-ok",
        "distribution": "txsim-fake-ok",
        "version": "1.0",
        "status": "loaded",
        "error": "",
        "module": "txsim_fake_ok",
        "provides": ["commands", "dac"],
    }
    assert records["fake-broken"]["status"] == "failed"
    assert "No module named 'txsim_nonexistent_dependency'" in records["fake-broken"]["error"]
    assert "fake-broken  txsim-fake-broken  2.0      failed" in table


def test_plugin_commands_are_added(fake_plugins, capsys):
    fake_plugins("ok")
    txsim_core.reset_registry()
    try:
        main(["fake-hello"])
    except SystemExit as exit_:
        assert exit_.code == 0
    finally:
        cli.commands.pop("fake-hello", None)
    assert "hello from fake-ok" in capsys.readouterr().out


def test_txsim_errors_show_a_message_not_a_traceback(fake_plugins):
    fake_plugins("ok", "clash")
    txsim_core.reset_registry()
    result = run("list-models")
    assert result.exit_code == 1
    assert result.output.startswith("Error: The dac model 'fake-dac' is provided twice")
    assert "Traceback" not in result.output
