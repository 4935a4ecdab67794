"""A fake plugin that registers a DAC name another fake plugin also uses."""

from txsim_core import ModelSpec, hookimpl


@hookimpl
def txsim_dac_models():
    from txsim_fake_ok import DoublingDAC, NoParams

    yield ModelSpec(name="fake-dac", factory=DoublingDAC, params=NoParams, summary="Clash")
