"""Ctrl-C during fit leaves a checkpoint; refitting resumes it and ends bit-identical."""

import numpy as np
import pytest
from koopman_dpk import DPK
from koopman_dpk.errors import DPKInputError


def _series():
    rng = np.random.default_rng(0)
    t = np.arange(500, dtype=float)
    return 3 + np.cos(2 * np.pi * t / 24) + 0.01 * t + rng.normal(0, 0.3, t.size)


KW = dict(periods=[24], n_search=1, search_interval=3, search_cutoff=7, epochs=14, seed=1)


def _interrupt_at(model, calls):
    seen = []

    def hook(epoch):
        seen.append(epoch)
        if len(seen) == calls:
            raise KeyboardInterrupt

    model._on_epoch_end = hook


@pytest.mark.parametrize("calls", [5, 17])  # inside the main phase / inside the refit phase
def test_interrupted_fit_resumes_bit_identical(tmp_path, calls):
    y = _series()
    kw = dict(KW, refit_full=True, patience=100)
    ref = DPK(**kw).fit(y)
    ck = tmp_path / "ck"
    m = DPK(checkpoint_dir=str(ck), **kw)
    _interrupt_at(m, calls)
    with pytest.warns(UserWarning, match="resume"), pytest.raises(KeyboardInterrupt):
        m.fit(y)
    assert (ck / "main" / "state.safetensors").is_file()
    resumed = DPK(checkpoint_dir=str(ck), **kw)
    done = []
    resumed._on_epoch_end = done.append
    resumed.fit(y)
    assert len(done) == 14 + ref.history_["refit_epochs"][0] - calls  # only the missing epochs ran
    np.testing.assert_array_equal(
        np.asarray(resumed.predict(horizon=30).quantile([0.1, 0.5, 0.9])),
        np.asarray(ref.predict(horizon=30).quantile([0.1, 0.5, 0.9])),
    )
    assert ref.periods_ == resumed.periods_
    assert not (ck / "main").exists() and not (ck / "refit").exists()  # cleaned after the fit


def test_checkpoint_of_other_data_is_refused(tmp_path):
    y = _series()
    m = DPK(checkpoint_dir=str(tmp_path), **KW)
    _interrupt_at(m, 3)
    with pytest.warns(UserWarning), pytest.raises(KeyboardInterrupt):
        m.fit(y)
    with pytest.raises(DPKInputError, match="other data or settings"):
        DPK(checkpoint_dir=str(tmp_path), **KW).fit(y + 1.0)
