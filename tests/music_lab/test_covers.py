"""Cover identification: the alignment measures on constructed matrices, transposition handling on real chroma
of the bundled clips (held-out chorales rendered with FluidSynth), the CNN's probability for a version vs a
different piece, and odd input (silence, identical files, another sample rate, a folder)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engines.core.engine import EngineError
from engines.music_lab.covers import (CoverIdEngine, alignment_path, audio_chroma, cross_similarity, dmax, oti,
                                      pooled_chroma, qmax)

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
CLIPS = Path(__file__).resolve().parents[2] / "resources/samples/music_lab/covers"
A, B_VERSION, OTHER = CLIPS / "bwv423-a.ogg", CLIPS / "bwv423-b-version.ogg", CLIPS / "bwv47.5-other-piece.ogg"


@pytest.fixture(scope="module")
def engine():
    e = CoverIdEngine()
    e.load("cpu")
    return e


def test_qmax_dmax_and_path_on_a_diagonal():
    R = np.zeros((40, 50))
    for i in range(30):
        R[5 + i, 10 + i] = 1
    q, Sq = qmax(R)
    d, Sd = dmax(R)
    assert q == 30 and d >= 30
    path = alignment_path(Sd)
    assert len(path) >= 25 and tuple(path[-1]) == (34, 39)
    noise = (np.random.default_rng(0).random((40, 50)) < 0.05).astype(float)
    assert qmax(noise)[0] < 6 and dmax(noise)[0] < 10


def test_oti_and_patchwise_transposition_on_synthetic_modulation():
    rng = np.random.default_rng(1)
    a = pooled_chroma(np.repeat(rng.random((40, 12)) ** 3, 4, axis=0))
    b = np.roll(a, 3, axis=1)
    assert (oti(a, b) + 3) % 12 == 0
    b2 = a.copy()
    b2[20:] = np.roll(a[20:], 2, axis=1)  # the second half modulates up a whole tone
    none, patch = cross_similarity(a, b2, "none"), cross_similarity(a, b2, "patch")
    diag = np.arange(20, 40)
    assert patch.sim[diag, diag].mean() > none.sim[diag, diag].mean() + 0.1
    assert qmax(patch.binary)[0] > qmax(none.binary)[0]


def test_version_scores_higher_than_a_different_piece(engine):
    r = engine.predict({"query": str(A), "references": [str(B_VERSION), str(OTHER)]})
    by = {Path(c.reference).name: c for c in r.comparisons}
    v, o = by[B_VERSION.name], by[OTHER.name]
    assert v.probability > o.probability
    assert v.probability > 0.5 > o.probability
    assert v.dmax > o.dmax and v.qmax > o.qmax
    assert r.ranking[0] is v and len(v.path) > 10


def test_identical_files_other_sample_rate_and_folder(engine, tmp_path):
    y, sr = sf.read(str(A))
    import librosa

    low = tmp_path / "a-16k.wav"
    sf.write(str(low), librosa.resample(y.astype(np.float32), orig_sr=sr, target_sr=16000), 16000)
    r = engine.predict({"query": str(A), "references": [str(A), str(low)]})
    assert all(c.probability > 0.9 for c in r.comparisons)
    assert any("resampled" in n for n in r.notes)
    folder = engine.predict({"query": str(A), "references": [str(CLIPS)]})
    assert len(folder.comparisons) == 2  # the query itself is left out of its own folder
    out = engine.write_result(folder, tmp_path / "covers.json")
    data = json.loads(out[0].read_text())
    assert data["ranking"][0]["reference"].endswith(B_VERSION.name)
    assert np.load(out[1])["matrix"].ndim == 2


def test_bad_input(engine, tmp_path):
    silent = tmp_path / "silence.wav"
    sf.write(str(silent), np.zeros(22050 * 3, np.float32), 22050)
    with pytest.raises(EngineError, match="silent"):
        engine.predict({"query": str(A), "references": [str(silent)]})
    with pytest.raises(EngineError, match="no such file"):
        engine.predict({"query": str(A), "references": [str(tmp_path / "missing.wav")]})
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="no audio"):
        engine.predict({"query": str(A), "references": [str(tmp_path / "empty")]})
    with pytest.raises(EngineError, match="transposition"):
        engine.predict({"query": str(A), "references": [str(OTHER)], "transposition": "guess"})
    with pytest.raises(EngineError):
        engine.request_from_paths([A])


def test_chroma_of_a_clip_is_pooled_and_normalized():
    c, notes = audio_chroma(A)
    assert c.shape[1] == 12 and 35 < len(c) < 45  # 15 s at ~2.7 frames per second
    assert np.allclose(np.linalg.norm(c, axis=1), 1, atol=1e-4)
