"""Screenshots to look at for the detection review and the chord view on a real song.

    xvfb-run -a .venv/bin/python scripts/screenshots/review_screenshots.py OUT_DIR

1. ``haemorrhage-review.png``: the head-CT sample (simulated, with inserted findings) in the radiology workspace,
   the detector run through the Run engine action, the Review tab with the findings list, the first finding
   chosen: the cursor is on it in the axial, coronal and sagittal planes (three-plane layout). Prints each
   finding (id, type, score, box in LPS mm, volume, mean HU) and the true findings of the sample, so the boxes
   can be checked against where the lesions were put.
2. ``music-real-song.png``: the bundled real recording (Frets on Fire "Feelings" excerpt) with its chord lane,
   beat grid and bar numbers, and the info line (tempo, meter, key). Prints the first chords and the info line.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eventloop import open_workstation  # noqa: E402


def main(out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    _app, win, pump, wait = open_workstation(1400, 900)

    # -- 1. haemorrhage review --------------------------------------------------------------------------
    view = win.switch_to("radiology")
    engine = win.registry().get("head-ct-haemorrhage")
    sample = engine.sample_paths()[0]
    view.open_path(sample)
    wait(lambda: view.volume is not None and not win.tasks.active())
    pump(0.5)
    view.run_engine("head-ct-haemorrhage")
    panel = view.findings_panel
    wait(lambda: panel.review is not None and not win.tasks.active())
    pump(0.5)
    view.set_layout("three", "axial")
    view.tabs.setCurrentWidget(panel)
    findings = list(panel.review.findings)
    for f in findings:
        print(f"{f.id}: {f.type} score {f.score:.2f} box {tuple(round(v, 1) for v in f.lo_mm)} .. "
              f"{tuple(round(v, 1) for v in f.hi_mm)} mm, {f.volume_ml:.2f} ml, {f.mean_hu:.0f} HU, state {f.state}")
    truth = sample.parent / "truth.json"
    if truth.exists():
        print("true findings:", json.dumps(json.loads(truth.read_text()), indent=None)[:2000])
    if panel.tree.topLevelItemCount():
        panel.tree.setCurrentItem(panel.tree.topLevelItem(0))
        panel.tree.setFocus()
    wait(lambda: not win.tasks.active())
    pump(1.0)
    win.grab().save(str(out / "haemorrhage-review.png"))
    print("cursor (voxel i, j, k):", getattr(view.session, "cursor", None))

    # -- 2. a real song -------------------------------------------------------------------------------------
    music = win.switch_to("music")
    music.open_path(ROOT / "resources/samples/music/sectoid-feelings-excerpt.ogg")
    wait(lambda: music.track is not None and music.session.beats is not None and not win.tasks.active())
    pump(1.5)
    win.grab().save(str(out / "music-real-song.png"))
    print("info line:", music.session.info_line)
    print("chords:", [(round(s.start, 2), s.label) for s in music.track.segments[:16]])
    b = music.session.beats
    print(f"beats: {b.bpm:.1f} bpm, {b.meter}, first downbeats {[round(float(t), 2) for t in b.downbeats[:4]]}")
    win.close()
    pump(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/screenshots")))
