"""Write docs/textvqa.md (Table-1-style VQA results, G2P PER/WER) and the assignment heatmap from result JSONs.

    .venv/bin/python scripts/textvqa/make_doc.py            # reads benchmarks/textvqa/results/*.json

The JSONs come from scripts/textvqa/train_vqa.py, train_g2p.py and benchmarks/textvqa/g2p_en_peer.py.
matplotlib (for the heatmap only) is used by this script, never by the app.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

SEED_TABLE = {  # seed 2.1, Table 1 (CLEVR validation, %)
    "MLP": {"single": 58.40, "ie": (60.10, 80.73), 1: ((41.31, 98.92), (59.12, 63.76), (60.22, 80.75)),
            2: ((48.94, 97.57), (60.27, 76.00), (60.38, 81.20)), 3: ((58.63, 95.67), (60.49, 82.67), (60.89, 81.86))},
    "SAN": {"single": 82.30, "ie": (85.23, 94.93), 1: ((42.19, 98.67), (83.99, 91.55), (85.98, 95.38)),
            2: ((58.39, 98.62), (84.83, 96.64), (87.02, 95.78)), 3: ((83.73, 98.62), (86.18, 96.26), (88.16, 96.12))},
}


def mcnemar(b: int, c: int) -> float:
    return (b - c) ** 2 / max(b + c, 1)


def load(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def vqa_table(res: dict, name: str) -> list[str]:
    e = res["ensembles"]
    ie = e["ie"]["test"]
    lines = [f"| {name} | k | Single top-1 | IE top-1 | IE oracle | MCL top-1 | MCL oracle | CMCL top-1 | CMCL oracle "
             f"| MCL-KD top-1 | MCL-KD oracle |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k in (1, 2, 3):
        cells = []
        for m in ("mcl", "cmcl", "mclkd"):
            r = e.get(f"{m}-k{k}")
            cells += [f"{r['test']['top1']:.2f}", f"{r['test']['oracle']:.2f}"] if r else ["-", "-"]
        tops = {m: e[f"{m}-k{k}"]["test"]["top1"] for m in ("mcl", "cmcl", "mclkd") if f"{m}-k{k}" in e}
        if tops:
            best = max(tops, key=tops.get)
            idx = {"mcl": 0, "cmcl": 2, "mclkd": 4}[best]
            cells[idx] = f"**{cells[idx]}**"
        single = f"{ie['single_top1']:.2f}" if k == 2 else ""
        iet, ieo = (f"{ie['top1']:.2f}", f"{ie['oracle']:.2f}") if k == 2 else ("", "")
        lines.append(f"| | {k} | {single} | {iet} | {ieo} | " + " | ".join(cells) + " |")
    return lines


def ordering_statements(res: dict) -> list[str]:
    e = res["ensembles"]
    ie = e["ie"]["test"]
    out = []
    for k in (1, 2, 3):
        if not all(f"{m}-k{k}" in e for m in ("mcl", "cmcl", "mclkd")):
            continue
        t = {m: e[f"{m}-k{k}"]["test"] for m in ("mcl", "cmcl", "mclkd")}
        a = t["mclkd"]["top1"] > ie["top1"]
        b = t["mcl"]["oracle"] >= max(t["cmcl"]["oracle"], t["mclkd"]["oracle"], ie["oracle"])
        c = t["mcl"]["top1"] <= min(t["cmcl"]["top1"], t["mclkd"]["top1"], ie["top1"])
        d = t["mclkd"]["top1"] >= max(t["mcl"]["top1"], t["cmcl"]["top1"])
        out.append(f"- k={k}: MCL-KD top-1 above IE: **{'yes' if a else 'no'}** "
                   f"({t['mclkd']['top1']:.2f} vs {ie['top1']:.2f}); MCL highest oracle: **{'yes' if b else 'no'}** "
                   f"({t['mcl']['oracle']:.2f}); MCL lowest top-1: **{'yes' if c else 'no'}** "
                   f"({t['mcl']['top1']:.2f}); MCL-KD best top-1 of the three MCL variants: "
                   f"**{'yes' if d else 'no'}**.")
    return out


def reading(res: dict) -> list[str]:
    """Plain words on what the numbers say, with the sampling error of a top-1 on this test set."""
    e = res["ensembles"]
    ie = e["ie"]["test"]
    n = int(res["args"]["test_scenes"]) * int(res["args"]["questions"])
    se = 100 * (ie["top1"] / 100 * (1 - ie["top1"] / 100) / n) ** 0.5
    kd = [e[f"mclkd-k{k}"]["test"]["top1"] for k in (1, 2, 3) if f"mclkd-k{k}" in e]
    cm = [e[f"cmcl-k{k}"]["test"]["top1"] for k in (1, 2, 3) if f"cmcl-k{k}" in e]
    mcl1 = e.get("mcl-k1", {}).get("test")
    out = [f"Reading it: one top-1 on {n} questions has a sampling error of about {se:.1f} points."]
    if mcl1:
        out.append(f"The seed's MCL finding reproduces clearly: with k=1 each example trains one model only, the "
                   f"oracle reaches {mcl1['oracle']:.1f}% while top-1 falls to {mcl1['top1']:.1f}% "
                   f"(overconfident non-specialists outvote the right one).")
    if kd and max(kd) - ie["top1"] > 2 * se:
        out.append(f"MCL-KD beats IE by up to {max(kd) - ie['top1']:.1f} points, beyond the sampling error, as in "
                   f"the seed.")
    elif kd:
        out.append(f"MCL-KD stays within {max(abs(x - ie['top1']) for x in kd):.1f} points of IE at every k "
                   f"(it keeps the base models' generalisation, as designed) but does **not** beat IE by more than "
                   f"the noise here, unlike the seed (+0.8 to +2.9 points).")
    if cm and kd and max(cm) > max(kd):
        out.append(f"CMCL has the best top-1 at our scale (up to {max(cm):.2f}), the opposite of the seed's "
                   f"ordering between CMCL and MCL-KD.")
    out.append("Likely reasons, not tested for lack of CPU time: specialists were trained only "
               f"{res['args']['spec_epochs']} epochs from weak bases (IE {ie['top1']:.0f}% against the seed's 85%), "
               "and beta=50 with tau=0.1 ties the non-specialists tightly to their teachers, so in two epochs the "
               "MCL-KD models move little from IE (see the flatter MCL-KD rows of the heatmap).")
    return [" ".join(out)]


def family_table(res: dict, key: str) -> list[str]:
    e = res["ensembles"]
    fams = res["families"]
    lines = ["| ensemble | " + " | ".join(fams) + " | all |", "|---|" + "---|" * (len(fams) + 1)]
    for name in ["ie"] + [f"{m}-k{k}" for m in ("mcl", "cmcl", "mclkd") for k in (1, 2, 3)]:
        if name in e:
            t = e[name]["test"]
            lines.append(f"| {name} | " + " | ".join(f"{t['family_top1'][f]:.1f}" for f in fams)
                         + f" | {t['top1']:.1f} |")
    return lines


def heatmap(res: dict, out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    e = res["ensembles"]
    names = [(m, k) for m in ("mcl", "cmcl", "mclkd") for k in (1, 2, 3) if f"{m}-k{k}" in e]
    fig, axes = plt.subplots(3, 3, figsize=(12, 9.5), squeeze=False)
    label = {"mcl": "MCL", "cmcl": "CMCL", "mclkd": "MCL-KD"}
    for ax in axes.flat:
        ax.axis("off")
    for (m, k) in names:
        ax = axes[("mcl", "cmcl", "mclkd").index(m)][k - 1]
        ax.axis("on")
        arr = np.asarray(e[f"{m}-k{k}"]["assignment_test"])
        ax.imshow(arr, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_xticks(range(len(res["families"])), res["families"], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(arr.shape[0]), [f"model {i + 1}" for i in range(arr.shape[0])], fontsize=8)
        for i in range(arr.shape[0]):
            for j in range(arr.shape[1]):
                ax.text(j, i, f"{arr[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if arr[i, j] < 0.6 else "black")
        ax.set_title(f"{label[m]}, k={k}", fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)


def engine_section() -> list[str]:
    """The cards' figures measured through the engines (scripts/textvqa/eval_textvqa.py), with calibration."""
    cards = {}
    for name in ("vqa-san-mclkd", "g2p-canvas-nsgd"):
        path = ROOT / "resources" / "models" / "textvqa" / f"{name}.card.json"
        cards[name] = json.loads(path.read_text(encoding="utf-8"))
    v, g = cards["vqa-san-mclkd"], cards["g2p-canvas-nsgd"]
    vm, gm = v["metrics"], g["metrics"]
    vc, gc = v.get("calibration") or {}, g.get("calibration") or {}
    if "engine_test_top1" not in vm or "engine_nsgd_wer" not in gm:
        return []
    return [
        "## Through the engines: card figures, calibration, out-of-distribution score", "",
        "Every figure below comes from the engines' own `predict` (engines/textvqa/evaluation.py), the path the "
        "window and `run` use, not from the training scripts' copies:", "",
        "```", "flock /tmp/csi-training.lock timeout 900 env OMP_NUM_THREADS=1 CSI_TORCH_THREADS=1 \\",
        "    .venv/bin/python scripts/textvqa/eval_textvqa.py --model both --calibrate --update-card", "```", "",
        "| model | figure (engine path) | card before | temperature | ECE before -> after | OOD p99 (energy) | "
        "test sample (tests) |",
        "|---|---|---|---|---|---|---|",
        f"| vqa-san-mclkd | test top-1 {vm['engine_test_top1']:.2f} % ({vm['engine_test_questions']} questions) | "
        f"{vm.get('training_script_test_top1', vm.get('test_top1')):.2f} % (same) | {vc.get('temperature', 1.0)} | "
        f"{vc.get('ece_before')} -> {vc.get('ece_after')} | {(vc.get('ood') or {}).get('p99')} | "
        f"top-1 {vm.get('test_sample_top1')} % |",
        f"| g2p-canvas-nsgd | NSGD PER {gm['engine_nsgd_per']:.2f} % / WER {gm['engine_nsgd_wer']:.2f} % "
        f"({gm['engine_test_words']} words) | {gm['nsgd_per']:.2f} / {gm['nsgd_wer']:.2f} (same) | "
        f"{gc.get('temperature', 1.0)} | {gc.get('ece_before')} -> {gc.get('ece_after')} | "
        f"{(gc.get('ood') or {}).get('p99')} | PER {gm.get('test_sample_nsgd_per', 0):.2f} / WER "
        f"{gm.get('test_sample_nsgd_wer', 0):.2f} % |", "",
        f"VQA calibration: {vc.get('data', '')}. The ensemble was already close to calibrated (T near 1). "
        "Its energy score separates unknown questions (a one-word question of unknown words, 'cat', is above "
        "the 99th percentile) but not pictures: a photo, noise or a blank picture gets ordinary energies, so "
        "the scene check (the picture's statistics against the generated scenes) is what flags a photo, as the "
        "answer's headline.", "",
        f"G2P calibration: {gc.get('data', '')}. The temperature divides only the reported probabilities "
        "(fill-step probabilities, word confidence, alternatives' log-probabilities); the fill order and the "
        "phonemes are those of the uncalibrated model. Non-words ('xqzjkvw', 'qqqqqqqq', 'aaaaaaaaaaaa') are "
        "above the 99th percentile and warned about; dictionary-like words ('knight', 'colonel') are not.", "",
        "Speed per question through the engine: `benchmarks/engines/bench_cpu_pathology_vqa.py` "
        "(benchmarks/engines/README.md).", ""]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "textvqa" / "results")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "textvqa.md")
    args = p.parse_args()
    d = args.results_dir
    san, mlp, g2p, peer = (load(d / "vqa-san.json"), load(d / "vqa-mlp.json"), load(d / "g2p.json"),
                           load(d / "g2p_en-peer.json"))
    full = load(d / "g2p-decoding.json")
    L: list[str] = []
    L += ["# Text & VQA workspace", "",
          "Two tools for research review, offline: a **visual question answering** panel that asks an MCL-KD "
          "specialized ensemble (seed 2.1, Mun et al. NeurIPS 2018) about a scene image, and a "
          "**grapheme-to-phoneme** panel that spells English words in ARPAbet with a convolutional canvas model "
          "decoded by non-sequential greedy decoding (NSGD, seed 3.1). Research use only.", "",
          "## Using it", "",
          "- GUI: open the *Text & VQA* workspace, press *Open the sample scene* (a generated scene with known "
          "answers), click a suggested question or type one. The answer panel shows the ensemble's answer and "
          "confidence, each of the five models' answers and confidences, which models are the specialists for the "
          "question's family (from the held-out assignment of the training rule), the truth and the oracle when "
          "the scene is a generated one, the SAN attention map (ensemble mean or one model, first or last hop) "
          "over the image, and the questions asked about each image. Drop an image on the window to ask about it.",
          "- The *Pronunciation (G2P)* tab: type or paste words (or open a .txt file). Each word gets ARPAbet "
          "(no stress), the other decoding order's result, the CMUdict entry when the word is known, and - for the "
          "selected word - the fill order step by step (which canvas position was decided at which step, with "
          "its probability) and alternatives (the runner-up symbol at the least confident steps, re-decoded) "
          "with log-probabilities. Speaking the result (espeak-ng) is **not** built.",
          "- Headless:", "",
          "```", "csi-workstation run vqa-mclkd scene.png --set question=\"how many circles are there?\" "
          "--out answer.json", "csi-workstation run g2p-nsgd words.txt --out pronunciations.txt   # or .json "
          "with fill order", "csi-workstation run g2p-nsgd words.txt --set order=l2r --out l2r.txt", "```", "",
          "Bad input: a file that is not an image, an empty question or one over 200 characters is refused "
          "with a plain message; unknown question words are ignored and listed; words with digits or non-Latin "
          "letters are skipped with the reason (or refused when given alone).", ""]

    L += ["## Visual question answering", "", "### The data (generated here)", "",
          "`engines/textvqa/scenes.py`: 3-6 objects per scene with colour (6), shape (circle, square, triangle), "
          "size (small, large), material (metal: shaded with a highlight; rubber: flat) and position, rendered "
          "at 64x64 with skimage.draw. Six question families - existence, counting, attribute query, comparison "
          "(count and attribute equality), spatial relation (left/right/above/below), multi-hop (same-attribute "
          "relations) - with answers computed from the scene graph; 22 answers. Each split has its own seed, so "
          "train, validation and test never share a scene.", ""]
    for res, name in ((san, "SAN"), (mlp, "MLP")):
        if not res:
            L += [f"### {name}: not run", "", f"The {name} table was not produced in this session (CPU time).", ""]
            continue
        a = res["args"]
        n_train = int(a["train_scenes"]) * int(a["questions"])
        L += [f"### {name}: Table 1 at our scale", "",
              f"Scale: {a['train_scenes']} training scenes x {a['questions']} questions ({n_train} questions), "
              f"validation {a['val_scenes']} scenes, **test {a['test_scenes']} scenes ({int(a['test_scenes']) * int(a['questions'])} "
              f"questions, numbers below)**; M=5; base models (IE) {a['base_epochs']} epochs Adam {a['base_lr']}; "
              f"specialists {a['spec_epochs']} epochs Adam {a['spec_lr']} starting from their own base model; "
              f"beta=50, tau=0.1 (MCL-KD), beta=0.5 (CMCL); network: CNN 3->16->32->32->32 channels to an 8x8 grid "
              f"plus coordinates, GRU(32->96) question encoder, "
              + ("2-hop stacked attention, hidden 96" if name == "SAN" else "MLP fusion 2x192 hidden units")
              + f"; torch.set_num_threads(1) on a shared 2-core CPU, {res.get('elapsed_s', 0) / 60:.0f} min in all.",
              "", *vqa_table(res, name), "",
              "Single top-1 is the mean of the five base models; top-1 is the argmax of the mean of the five "
              "softmaxes; oracle counts a question right when any model is right. Bold: best top-1 of the three "
              "MCL variants for that k.", "", "Where our ordering agrees with the seed's (MCL-KD top-1 above IE; "
              "MCL highest oracle but poor top-1):", "", *ordering_statements(res), "", *reading(res), "",
              f"Seed (CLEVR validation) for reference: {name} single {SEED_TABLE[name]['single']}, IE "
              f"{SEED_TABLE[name]['ie'][0]}/{SEED_TABLE[name]['ie'][1]}; k=1 MCL {SEED_TABLE[name][1][0]}, "
              f"CMCL {SEED_TABLE[name][1][1]}, MCL-KD {SEED_TABLE[name][1][2]} (top-1, oracle).", "",
              f"Per-family top-1 ({name}, test):", "", *family_table(res, name), ""]
        png = ROOT / "benchmarks" / "textvqa" / f"assignment-heatmap-{name.lower()}.png"
        heatmap(res, png, f"{name}: share of each family's test questions the training rule assigns to each model")
        L += [f"![{name} assignment heatmap](../benchmarks/textvqa/{png.name})", "",
              f"`benchmarks/textvqa/{png.name}`: rows are the five models, columns the question families, each "
              f"cell the share of that family's test questions that the method's own assignment rule (task loss "
              f"+ beta x penalty, minimised over all C(5,k) subsets) gives to that model. A column with one bright "
              f"cell means one model specialises in that family.", ""]
        if res.get("shipped"):
            L += [f"Shipped: `resources/models/textvqa/{res['shipped']['name']}` (MCL-KD, k={res['shipped']['k']}, "
                  f"chosen by validation top-1), with its model card.", ""]
    L += ["Command that regenerates the tables, weights and this page (about 40-70 min per network on the shared "
          "CPU):", "", "```",
          "python scripts/textvqa/train_vqa.py --kind san --results benchmarks/textvqa/results/vqa-san.json --ship",
          "python scripts/textvqa/train_vqa.py --kind mlp --results benchmarks/textvqa/results/vqa-mlp.json",
          "python scripts/textvqa/make_doc.py", "```", ""]

    L += ["## Grapheme-to-phoneme with NSGD", ""]
    if g2p:
        a = g2p["arch"]
        L += [f"Data: CMU Pronouncing Dictionary (`cmudict` package, `cmudict.dict` read directly; the wrapper is "
              f"GPL and not imported), stress removed, words of a-z/' with at most 20 letters and phonemes, split "
              f"85/5/10 by word with numpy seed 1: {g2p['split']}. Model: grapheme encoder and canvas encoder, "
              f"{a['blocks']} gated residual conv blocks each (width {a['width']}, {a['channels']} channels), one "
              f"attention read from canvas to graphemes, decoder {a['decoder']} channels (the authors': 5 blocks, "
              f"256 channels, 512 decoder). Trained by random blanking for {g2p['train_minutes']:.0f} minutes "
              f"({g2p['steps']} steps of {g2p['batch']}, {g2p['epochs']:.2f} epochs) at one thread.", "",
              f"Test: the first **{g2p['test_words']} words** of the shuffled test split (a subset, for CPU time). "
              f"WER: a word is wrong unless it equals one of its dictionary pronunciations; PER: edit distance to the "
              f"closest pronunciation over its length.", "",
              "| decoder | PER % | WER % | words |", "|---|---|---|---|",
              f"| NSGD (most confident blank first) | {g2p['nsgd']['per']:.2f} | {g2p['nsgd']['wer']:.2f} | "
              f"{g2p['nsgd']['words']} |",
              f"| left-to-right greedy (same model) | {g2p['l2r']['per']:.2f} | {g2p['l2r']['wer']:.2f} | "
              f"{g2p['l2r']['words']} |"]
        if peer and peer.get("per") is not None:
            L.append(f"| g2p_en 2.1.0 bundled checkpoint (GRU seq2seq, stress stripped) | {peer['per']:.2f} | "
                     f"{peer['wer']:.2f} | {peer['words']} |")
        L.append("")
        if full:
            n = full["test_words"]
            L += [f"The whole test split ({n} words; `benchmarks/textvqa/g2p_decoding.py`, shipped weights):", "",
                  "| decoder | PER % | WER % | PER % (no apostrophe) | WER % (no apostrophe) |", "|---|---|---|---|---|"]
            for o, label in (("nsgd", "NSGD"), ("l2r", "left-to-right")):
                L.append(f"| {label} | {full[o]['per']:.2f} | {full[o]['wer']:.2f} | "
                         f"{full[o + '_no_apostrophe']['per']:.2f} | {full[o + '_no_apostrophe']['wer']:.2f} |")
            L += ["", f"Paired: the two orders give different output for {full['differ']} words; only NSGD is right "
                  f"on {full['only_nsgd_right']}, only left-to-right on {full['only_l2r_right']} (McNemar chi-square "
                  f"{mcnemar(full['only_nsgd_right'], full['only_l2r_right']):.1f} on 1 degree of freedom; above "
                  f"10.8 means p < 0.001).", ""]
            g2p = dict(g2p, nsgd=full["nsgd"], l2r=full["l2r"])
        better = g2p["nsgd"]["per"] < g2p["l2r"]["per"]
        L += [f"The seed claims NSGD beats fixed-order decoding. Here NSGD's PER is "
              f"{'lower' if better else 'not lower'} than left-to-right's "
              f"({g2p['nsgd']['per']:.2f} vs {g2p['l2r']['per']:.2f}) and its WER "
              f"{'lower' if g2p['nsgd']['wer'] < g2p['l2r']['wer'] else 'not lower'} "
              f"({g2p['nsgd']['wer']:.2f} vs {g2p['l2r']['wer']:.2f}), on the same model. The seed's CNN G2P "
              f"reference is 5.37% PER / 23.23% WER on CMUdict with the full-size model.", ""]
        if peer:
            L += [peer.get("note", ""), ""]
        L += ["Examples (test words, NSGD):", "", "| word | NSGD | left-to-right |", "|---|---|---|"]
        for w, ph in list(g2p["nsgd_examples"].items())[:10]:
            L.append(f"| {w} | {ph} | {g2p['l2r_examples'][w]} |")
        L += ["", "```", "python scripts/textvqa/train_g2p.py --minutes 22 --test-words 2000 "
              "--results benchmarks/textvqa/results/g2p.json --ship",
              "python benchmarks/textvqa/g2p_decoding.py  # whole test split, both orders, paired counts",
              "python benchmarks/textvqa/g2p_en_peer.py   # the peer row, if g2p_en's wheel is at hand", "```", ""]
    L += engine_section()
    L += ["## Screenshots", "", "![VQA tab](../benchmarks/textvqa/screenshot-vqa.png)", "",
          "The VQA tab on the bundled sample scene: the ensemble's answer with the truth and oracle, the five "
          "models with their answers, confidences and their share of this question family, and the mean last-hop "
          "attention (red). On this existence question the attention sits on an empty corner: at our scale the "
          "attention maps are not a reliable explanation of the answer.", "",
          "![G2P tab](../benchmarks/textvqa/screenshot-g2p.png)", "",
          "The G2P tab: 'knight' is filled T first, then the end mark, then N, then AY (the seed's Figure 3 "
          "example), with the runner-up alternatives; 'w0rd' is skipped with the reason.", "",
          "```", "QT_QPA_PLATFORM=offscreen csi-workstation screenshot --workspace textvqa --sample vqa.png",
          "QT_QPA_PLATFORM=offscreen csi-workstation screenshot --workspace textvqa --open words.txt g2p.png", "```", ""]
    L += ["## Limits", "",
          "- The VQA models know only this generated 2-D world; photographs get meaningless answers (the image is "
          "resized to 64x64 and a note says so). The scale is far below CLEVR and the seed's networks, so the "
          "absolute numbers are not comparable with the seed's; only the ordering of the methods is.",
          "- The G2P model is much smaller and trained far shorter than the authors'; it predicts no stress.",
          "- Nothing here is for clinical or any other decision-making: research use only.", ""]
    args.out.write_text("\n".join(L) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
