"""Playback through PortAudio's ALSA null device (no sound card): play, loop a region, pause.

Runs in a subprocess whose HOME holds an .asoundrc with `pcm.!default { type null }` (PortAudio reads the
ALSA configuration once, when sounddevice is first imported)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from engines.music.playback import mix

SCRIPT = r"""
import json, time
import numpy as np
import pytest
from engines.music.playback import AudioPlayer, playback_availability
ok, why = playback_availability()
out = {"ok": ok, "why": why}
if ok:
    p = AudioPlayer()
    p.set_buffer(np.zeros(22050 * 3, np.float32), 22050)
    p.set_loop(0.5, 1.0)
    p.seek(2.0)
    p.play()  # outside the loop region: starts at the loop start
    seen = []
    t = time.monotonic()
    while time.monotonic() - t < 5 and len(seen) < 40:
        seen.append(p.position())
        time.sleep(0.02)
    out["positions"] = seen
    out["playing"] = p.playing
    p.pause()
    out["paused"] = not p.playing
    p.close()
print("JSON" + json.dumps(out))
"""


def test_play_and_loop_on_the_alsa_null_device(tmp_path):
    (tmp_path / ".asoundrc").write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    env = dict(os.environ, HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=60)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("JSON"))
    out = json.loads(line[4:])
    if not out["ok"]:  # no libportaudio2 on this machine: the reason must say so plainly
        assert "playback is unavailable" in out["why"]
        return
    positions = out["positions"]
    assert out["playing"] and out["paused"]
    assert all(0.5 - 1e-6 <= p <= 1.0 + 1e-6 for p in positions), positions
    assert len(set(round(p, 3) for p in positions)) > 1  # it moves


def test_mix_modes_and_peak_safety():
    audio = np.full(100, 0.9, np.float32)
    chords = np.full(80, 0.9, np.float32)
    assert np.array_equal(mix(audio, chords, "audio"), audio)
    assert np.allclose(mix(audio, chords, "chords"), chords)
    both = mix(audio, chords, "mix")
    assert len(both) == 100 and np.abs(both).max() <= 0.99 + 1e-6


VIEW_SCRIPT = r"""
import json, os, time
from PySide6.QtCore import QCoreApplication
from app.main_window import MainWindow, create_app
app = create_app()
win = MainWindow(detect_device=False)
win.show()
view = win.switch_to("music")
view.open_sample()
deadline = time.monotonic() + 120
while view.track is None and time.monotonic() < deadline:
    app.processEvents(); time.sleep(0.02)
out = {"track": view.track is not None}
view.select(2)
view.loop_box.setChecked(True)
view.source_box.setCurrentIndex(2)  # recording + chords: synthesizes the chord track first
view.toggle_play()
deadline = time.monotonic() + 60
while not view.player.playing and time.monotonic() < deadline:
    app.processEvents(); time.sleep(0.02)
out["playing"] = view.player.playing
out["chord_audio"] = view._chord_audio is not None
seg = view.track.segments[2]
out["loop"] = list(view.player.loop or [])
out["segment"] = [seg.start, seg.end]
positions = []
for _ in range(20):
    app.processEvents(); time.sleep(0.02); positions.append(view.playhead_s)
out["positions"] = positions
out["button"] = view.play_button.text()
view.toggle_play()
out["paused"] = not view.player.playing
out["errors"] = [n.message for n in win.notifications.items if n.level in ("error", "warning")]
win.close()
print("JSON" + json.dumps(out))
"""


def test_view_plays_recording_and_chords_looping_the_selected_chord(tmp_path):
    (tmp_path / ".asoundrc").write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    env = dict(os.environ, HOME=str(tmp_path), QT_QPA_PLATFORM="offscreen",
               CSI_WORKSTATION_HOME=str(tmp_path / "csi"))
    proc = subprocess.run([sys.executable, "-c", VIEW_SCRIPT], capture_output=True, text=True, env=env, timeout=240)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("JSON")), None)
    assert line is not None, proc.stderr[-2000:]
    out = json.loads(line[4:])
    assert out["track"]
    if not out["playing"]:  # no PortAudio here: the view must have said why
        assert any("playback is unavailable" in e.lower() for e in out["errors"]), out
        return
    assert out["chord_audio"] and out["button"] == "Pause" and out["paused"]
    start, end = out["segment"]
    assert out["loop"] == pytest.approx([start, end], abs=1e-3)
    assert all(start - 1e-3 <= p <= end + 1e-3 for p in out["positions"]), out["positions"]
    assert out["errors"] == []
