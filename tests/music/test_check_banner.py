"""Chord recognition on something that is not music says so above the lanes and in Messages."""
from __future__ import annotations

import numpy as np
import soundfile as sf

from tests.music.test_trust_view import open_recording, render_wav


def test_noise_gets_a_banner_and_music_does_not(qtbot, window, tmp_path):
    view = window.switch_to("music")
    noise = tmp_path / "noise.wav"
    sf.write(str(noise), (0.2 * np.random.default_rng(1).standard_normal(22050 * 6)).astype(np.float32), 22050)
    open_recording(qtbot, view, noise)
    assert view.check_banner.isVisible()
    assert "Chord recognition: check this result" in view.check_banner.text()
    assert any(n.level == "warning" and n.message.startswith("Chord recognition:")
               for n in window.notifications.items)
    open_recording(qtbot, view, render_wav(tmp_path / "music.wav"))
    assert not view.check_banner.isVisible()
