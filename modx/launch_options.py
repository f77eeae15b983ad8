"""The settings of a study's launcher (a plan's ``[launcher]`` table and the CLI's flags),
checked where a plan is read, before any job starts."""

from __future__ import annotations

from modx.errors import ConfigError

LAUNCHERS = ("local", "slurm")
OPTIONS = {"partition": str, "time_min": int, "gpus_per_cell": int, "cpus_per_cell": int,
           "mem_gb": int, "account": str, "parallel": int}


def check_options(opts: dict, source: str = "[launcher]") -> dict:
    """Known keys with values of the right type and sign; a one-line error otherwise."""
    for k, v in opts.items():
        if k not in OPTIONS:
            raise ConfigError(f"unknown launcher setting {k!r} in {source}; settings: "
                              f"{', '.join(OPTIONS)}")
        want = OPTIONS[k]
        if want is int and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise ConfigError(f"{k} in {source} must be a non-negative integer, got {v!r}")
        if want is str and not isinstance(v, str):
            raise ConfigError(f"{k} in {source} must be a string, got {v!r}")
    if opts.get("parallel") == 0 or opts.get("time_min") == 0:
        raise ConfigError(f"parallel and time_min in {source} must be >= 1")
    return opts
