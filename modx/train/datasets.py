"""The data of a run, opened from its config before anything is written: the phases' training
data (a synthetic stream's domains, a split of one set, or streamed shards), the evaluation
sets, the base data, and the methods' reference sets (checked against the others).
"""

from __future__ import annotations

from modx.errors import TrainingError
from sdtools.data.specs import display_names, open_data, synthetic_of

from ..config import TrainConfig
from ..data import split_phases


def open_run_data(cfg: TrainConfig):
    """``(phases, evals, base_data)`` of a run: the training data of phases 0..T (phase 0
    None when the run starts from ``init``), ``[(name, data)]`` of the evaluation sets and
    the base data (None without ``base_data``); the methods' reference sets are opened and
    checked too (:func:`check_method_data`)."""
    syn = synthetic_of(cfg.data)
    evals = []
    if cfg.phases.startswith("shards:"):  # streamed, never indexed (modx.stream)
        from ..stream import check_streamed, shard_phases

        check_streamed(cfg)
        phases = shard_phases(cfg.data, cfg.phases)
    elif syn is not None:
        from sdtools.data.synthetic import SyntheticData, SyntheticStream

        scfg, _, _, n = syn
        stream = SyntheticStream(scfg)
        if cfg.phases == "domain":
            phases = [stream.domain(k, "train", n=n) for k in range(scfg.n_domains)]
        else:
            everything = SyntheticData(scfg, tuple(range(scfg.n_domains)), "train", n)
            phases = split_phases(everything, cfg.phases, seed=cfg.seed)
        evals = [(f"domain{k}", stream.domain(k, "test", n=cfg.eval_n))
                 for k in range(scfg.n_domains)]
    else:
        phases = split_phases(open_data(cfg.data), cfg.phases, seed=cfg.seed)
    if cfg.eval_data:
        evals = list(zip(display_names(cfg.eval_data), map(open_data, cfg.eval_data),
                         strict=True))
    if not evals:
        raise TrainingError("no evaluation data: set eval_data (a list of data SPECs)")
    base_data = open_data(cfg.base_data) if cfg.base_data else None
    if cfg.init is not None:
        phases = [None, *phases]  # phase 0 is the given model
    if len(phases) < 2:
        raise TrainingError(f"phases = {cfg.phases!r} gives phase 0 alone, with nothing to "
                            "train after it; split the data into at least 2 phases")
    check_method_data(cfg, phases, evals)
    return phases, evals, base_data


def check_method_data(cfg: TrainConfig, phases, evals) -> None:
    """The data SPECs among the methods' own settings (a reference set), opened now with
    the run's other data (a missing file fails before anything is written), and refused
    when they are the run's evaluation sets or a phase's training data."""
    from modx.errors import ConfigError
    from sdtools.errors import UserError

    from ..methods import METHODS

    def identity(data):
        if data is None or getattr(data, "streamed", False):
            return None
        pid = data.probe_id(content=False)
        return pid["n_images"], pid["images_set"], pid["captions_set"]

    for m in cfg.methods:
        method = METHODS[m]
        for key in getattr(method, "data_options", ()):
            spec = (cfg.method_options or {}).get(m, {}).get(key, method.options[key])
            what = f"[{m}] {key} = {spec!r}"
            try:
                ref = open_data(spec)
            except UserError as exc:
                raise type(exc)(f"{what}: {exc}") from None
            own = identity(ref)
            if spec == cfg.data or spec in cfg.eval_data:
                raise ConfigError(f"{what} is the run's own data; a reference set is "
                                  "neither old nor new data: give another set")
            for name, data in evals:
                if own is not None and own == identity(data):
                    raise ConfigError(f"{what} is the evaluation set {name}; a reference "
                                      "set is neither old nor new data: give another set")
            for t, data in enumerate(phases):
                if own is not None and own == identity(data):
                    raise ConfigError(f"{what} is the training data of phase {t}; a "
                                      "reference set is neither old nor new data: give "
                                      "another set")
