"""Seed ensembles of DPK models (deep ensembles, Lakshminarayanan et al. 2017).

A DPK fit depends on its seed (weight initialisation, batch order), and on long horizons the
forecasts of different seeds can differ as much as the models being compared: on the co2
benchmark's test origins seeds 0, 1 and 2 give DPK/MSTL pinball ratios of 1.109, 1.462 and
1.385. `DPKEnsemble` fits the same configuration with `n_members` consecutive seeds and
combines the members' predictive distributions:

* ``combine="mixture"``: the equal-weight mixture (the deep-ensemble predictive), for every
  distribution. It is built on the forecast's scenario axis, so the quantiles, CDF, PIT,
  samples and NLL are those of the mixture.
* ``combine="quantiles"``: the average of the members' quantile functions (Vincentization,
  common in forecast combination). For Normal members this is exactly the Normal with the
  averaged mean and averaged standard deviation, which is what is returned; it is sharper
  than the mixture, which also carries the spread between the members' means.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .errors import DPKInputError, DPKNotFittedError, DPKPersistenceError
from .forecast import DEFAULT_QUANTILES, Forecast
from .model import DPK

COMBINES = ("mixture", "quantiles")
MANIFEST = "ensemble.json"


class DPKEnsemble:
    """`n_members` DPK models with seeds seed, seed + 1, ...; fit/predict like `DPK`."""

    def __init__(
        self,
        n_members: int = 3,
        combine: str = "mixture",
        progress: bool = False,
        **dpk_config: Any,
    ):
        if not (isinstance(n_members, int) and n_members >= 1):
            raise DPKInputError(f"n_members must be a positive integer, got {n_members!r}")
        if combine not in COMBINES:
            raise DPKInputError(f"combine must be one of {COMBINES}, got {combine!r}")
        self.n_members = n_members
        self.combine = combine
        self.progress = progress
        self.seed = int(dpk_config.pop("seed", 0))
        self.dpk_config = dpk_config
        first = self._member(0)  # validates the configuration now, not after a fit
        transform = first.forecast_transform()
        if transform is not None:
            raise DPKInputError(
                f"DPKEnsemble combines the members' distributions directly, and {transform} "
                "transforms each member's forecast; drop it, or use calibration='scale' with "
                "distribution='normal'."
            )
        if combine == "quantiles" and first.dist.name != "normal":
            raise DPKInputError(
                "combine='quantiles' averages Normal quantile functions exactly (mean and sd "
                f"averaged); for distribution={first.dist.name!r} use "
                "combine='mixture'."
            )
        self.members_: list[DPK] = []

    def _member(self, k: int, **override: Any) -> DPK:
        return DPK(**{**self.dpk_config, "seed": self.seed + k, **override})

    def fit(self, y: Any, **fit_kwargs: Any) -> DPKEnsemble:
        """Fit every member on the same data (`fit_kwargs` as for `DPK.fit`). With
        `trend="auto"` the trend is chosen once, by the first member's rolling-origin check,
        and the other members are fitted with that trend: the choice is a property of the
        data, and this saves (n_members - 1) x len(trend_candidates) fits."""
        members: list[DPK] = []
        trend = None
        for k in tqdm(range(self.n_members), desc="ensemble", disable=not self.progress):
            member = self._member(k) if trend is None else self._member(k, trend=trend)
            members.append(member.fit(y, **fit_kwargs))
            if k == 0 and getattr(members[0], "trend_choice_", None):
                trend = members[0].trend_
        self.members_ = members
        return self

    def _require_fitted(self) -> None:
        if not self.members_:
            raise DPKNotFittedError("this DPKEnsemble is not fitted yet; call .fit(y, ...) first.")

    def predict(self, **predict_kwargs: Any) -> Forecast:
        """The combined forecast (arguments as for `DPK.predict`)."""
        self._require_fitted()
        fcs = [m.predict(**predict_kwargs) for m in self.members_]
        # a guard: forecast_transform() refused these settings in __init__ already
        if any(fc._transformed or fc.residual_calibration is not None for fc in fcs):
            raise DPKInputError(
                "DPKEnsemble combines members' distributions directly; members with "
                "residual_ar, conformal or non-Normal scale calibration transform their "
                "forecasts. Use calibration='scale' with distribution='normal', or none."
            )
        first = fcs[0]
        if self.combine == "quantiles":
            # Normal: the average of the quantile functions mu_k + sigma_k z is
            # mean(mu) + mean(sigma) z, per scenario
            params = {k: np.mean([fc._p[k] for fc in fcs], axis=0) for k in first._p}
        else:  # the mixture: members (x scenarios) on the scenario axis, equal weights
            params = {k: np.concatenate([fc._p[k] for fc in fcs], axis=0) for k in first._p}
        return Forecast(first.distribution, params, first.output, seed=first.seed)

    def quantiles(self, q=DEFAULT_QUANTILES, **predict_kwargs: Any):
        return self.predict(**predict_kwargs).quantile(q)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Any, overwrite: bool = False) -> Path:
        """A directory with `ensemble.json` and one saved DPK per member (`member-00`, ...),
        written to a temporary directory and renamed into place."""
        from .io import write_dir_atomic

        self._require_fitted()
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it.")
        manifest = {
            "n_members": self.n_members,
            "combine": self.combine,
            "seed": self.seed,
            "members": [f"member-{k:02d}" for k in range(self.n_members)],
        }

        def write(tmp: Path) -> None:
            for name, m in zip(manifest["members"], self.members_, strict=True):
                m.save(tmp / name)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

        return write_dir_atomic(path, write)

    @classmethod
    def load(cls, path: Any) -> DPKEnsemble:
        path = Path(path)
        if not (path / MANIFEST).is_file():
            raise DPKPersistenceError(
                f"{path} has no {MANIFEST}; it is not a saved DPKEnsemble directory."
            )
        manifest = json.loads((path / MANIFEST).read_text())
        members = [DPK.load(path / name) for name in manifest["members"]]
        config = {**members[0].get_params()}
        config.pop("seed", None)
        ens = cls(manifest["n_members"], manifest["combine"], seed=manifest["seed"], **config)
        ens.members_ = members
        return ens

    def __repr__(self) -> str:
        return f"DPKEnsemble(n_members={self.n_members}, combine={self.combine!r})"
