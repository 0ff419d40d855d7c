import numpy as np
import pandas as pd
from koopman_dpk import DPK, Forecast


def test_fit_predict_roundtrip_numpy_and_pandas(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(400)
    y = 5 + np.cos(2 * np.pi * t / 24) + 0.3 * rng.normal(size=t.size)
    m = DPK(periods=[24], epochs=5, seed=0).fit(y)
    fc = m.predict(horizon=48)
    assert isinstance(fc, Forecast)
    assert np.asarray(fc.quantile([0.1, 0.5, 0.9])).shape == (48, 3)
    m.save(tmp_path / "m")
    m2 = DPK.load(tmp_path / "m")
    np.testing.assert_allclose(np.asarray(m2.predict(horizon=48).mean()), np.asarray(fc.mean()))

    s = pd.Series(y, index=pd.date_range("2020-01-01", periods=t.size, freq="h"))
    mp = DPK(periods=["24h"], epochs=3, seed=0).fit(s)
    out = mp.predict(horizon=10).mean()
    assert isinstance(out, pd.Series) and out.index[0] == s.index[-1] + pd.Timedelta("1h")
