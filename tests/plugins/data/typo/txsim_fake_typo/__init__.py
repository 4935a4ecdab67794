"""A fake plugin with a misspelt hook name."""

from txsim_core import hookimpl


@hookimpl
def txsim_dac_model():
    return ()
