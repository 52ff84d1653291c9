"""Train and evaluate the VQA ensembles (IE, MCL, CMCL, MCL-KD for k = 1, 2, 3) on generated CLEVR-like scenes.

    .venv/bin/python scripts/textvqa/train_vqa.py --kind san --results build/textvqa/vqa-san.json --ship

Writes a results JSON (Table-1 numbers, per-family accuracy and assignment) after every ensemble, so a
stopped run keeps what it finished. ``--ship`` saves the MCL-KD ensemble with the best validation top-1 to
resources/models/textvqa as safetensors with a model card, its test figure measured through the engine's predict
(engines/textvqa/evaluation.py). Seed and threads from the harness (engines/core/training.py; --threads 1).
"""
from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from engines.textvqa import scenes as S  # noqa: E402

M = 5
TAU = 0.1
BETA = {"mcl": 0.0, "cmcl": 0.5, "mclkd": 50.0}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def scene_batches(data, scenes_per_batch: int, rng):
    import torch

    by_scene = [[] for _ in range(len(data["images"]))]
    for qi, s in enumerate(data["q_scene"]):
        by_scene[s].append(qi)
    order = rng.permutation(len(by_scene))
    for start in range(0, len(order), scenes_per_batch):
        chunk = order[start:start + scenes_per_batch]
        qidx = np.concatenate([by_scene[s] for s in chunk])
        local = np.concatenate([[j] * len(by_scene[s]) for j, s in enumerate(chunk)])
        yield (torch.from_numpy(data["images_t"][chunk]), torch.from_numpy(qidx), torch.from_numpy(local))


def prepare(data):
    data["images_t"] = (data["images"].astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy()
    return data


def all_logits(model, data, scenes_per_batch: int = 64):
    import torch

    model.eval()
    out = np.zeros((M, len(data["q_answer"]), len(S.ANSWERS)), np.float32)
    with torch.no_grad():
        for imgs, qidx, local in scene_batches(data, scenes_per_batch, np.random.default_rng(0)):
            toks = torch.from_numpy(data["q_tokens"][qidx.numpy()])
            out[:, qidx.numpy()] = model(imgs, toks, local).numpy()
    model.train()
    return out


def evaluate(logits: np.ndarray, data) -> dict:
    y = data["q_answer"]
    fam = data["q_family"]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    ens = probs.mean(0).argmax(-1)
    each = logits.argmax(-1)  # (M, N)
    correct_each = each == y[None]
    res = {"top1": float((ens == y).mean() * 100), "oracle": float(correct_each.any(0).mean() * 100),
           "members_top1": [float(c.mean() * 100) for c in correct_each],
           "family_top1": {f: float((ens[fam == i] == y[fam == i]).mean() * 100) for i, f in enumerate(S.FAMILIES)},
           "family_members_top1": {f: [float(c[fam == i].mean() * 100) for c in correct_each]
                                   for i, f in enumerate(S.FAMILIES)}}
    return res


def family_assignment(method, k, logits, teacher, data) -> list[list[float]]:
    """Fraction of each family's held-out questions that the training rule assigns to each model (M x F)."""
    import torch

    from engines.textvqa.vqa_model import assignment

    a = assignment(method, torch.from_numpy(logits), torch.from_numpy(data["q_answer"]), k,
                   teacher=None if teacher is None else torch.from_numpy(teacher), beta=BETA.get(method, 0.0),
                   tau=TAU).numpy()
    fam = data["q_family"]
    return [[float(a[m, fam == i].mean()) for i in range(len(S.FAMILIES))] for m in range(a.shape[0])]


def train(model, data, method, k, epochs, lr, teacher_train=None, seed=0, label=""):
    import torch

    from engines.textvqa.vqa_model import mcl_loss

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        t0, total, n = time.time(), 0.0, 0
        for imgs, qidx, local in scene_batches(data, 16, rng):
            q = qidx.numpy()
            toks = torch.from_numpy(data["q_tokens"][q])
            y = torch.from_numpy(data["q_answer"][q])
            logits = model(imgs, toks, local)
            teacher = None if teacher_train is None else torch.from_numpy(teacher_train[:, q])
            loss, _ = mcl_loss(method, logits, y, k, teacher=teacher, beta=BETA.get(method, 0.0), tau=TAU)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(q)
            n += len(q)
        log(f"{label} epoch {epoch + 1}/{epochs} loss {total / n:.4f} ({time.time() - t0:.0f} s)")


def main() -> int:
    from engines.core.training import TrainingRun, parser

    p = parser(__doc__.splitlines()[0], minutes=600.0, seed=0)
    p.add_argument("--kind", choices=("san", "mlp"), default="san")
    p.add_argument("--train-scenes", type=int, default=1600)
    p.add_argument("--val-scenes", type=int, default=200)
    p.add_argument("--test-scenes", type=int, default=400)
    p.add_argument("--questions", type=int, default=10)
    p.add_argument("--base-epochs", type=int, default=10)
    p.add_argument("--spec-epochs", type=int, default=2)
    p.add_argument("--base-lr", type=float, default=1e-3)
    p.add_argument("--spec-lr", type=float, default=5e-4)
    p.add_argument("--methods", default="mcl,cmcl,mclkd")
    p.add_argument("--ks", default="1,2,3")
    p.add_argument("--results", type=Path, required=True)
    p.add_argument("--ship", action="store_true")
    p.add_argument("--time-only", action="store_true", help="time one base epoch and exit")
    args = p.parse_args()

    import torch

    from engines.textvqa.vqa_model import DEFAULT_ARGS, Ensemble

    TrainingRun.from_args(f"vqa-{args.kind}-mclkd", args)  # seed, threads, device; the epochs set the length
    t_start = time.time()
    log("building data")
    train_d = prepare(S.build_dataset("train", args.train_scenes, args.questions))
    val_d = prepare(S.build_dataset("val", args.val_scenes, args.questions))
    test_d = prepare(S.build_dataset("test", args.test_scenes, args.questions))
    log(f"train {len(train_d['q_answer'])} questions / {args.train_scenes} scenes; val {len(val_d['q_answer'])}; "
        f"test {len(test_d['q_answer'])}")
    arch = dict(DEFAULT_ARGS, vocab=len(S.VOCAB), answers=len(S.ANSWERS))
    base = Ensemble(args.kind, M, **{k: v for k, v in arch.items()})
    if args.time_only:
        train(base, train_d, "ie", M, 1, args.base_lr, label="timing")
        return 0
    results = {"kind": args.kind, "arch": arch, "members": M, "beta": BETA, "tau": TAU, "args": {
        k: str(v) for k, v in vars(args).items()}, "families": list(S.FAMILIES), "ensembles": {}}
    args.results.parent.mkdir(parents=True, exist_ok=True)

    def dump():
        results["elapsed_s"] = time.time() - t_start
        args.results.write_text(json.dumps(results, indent=1) + "\n")

    train(base, train_d, "ie", M, args.base_epochs, args.base_lr, seed=1, label=f"{args.kind} IE")
    teacher_train = all_logits(base, train_d)
    base_val, base_test = all_logits(base, val_d), all_logits(base, test_d)
    ie = {"val": evaluate(base_val, val_d), "test": evaluate(base_test, test_d)}
    ie["test"]["single_top1"] = float(np.mean(ie["test"]["members_top1"]))
    ie["val"]["single_top1"] = float(np.mean(ie["val"]["members_top1"]))
    results["ensembles"]["ie"] = ie
    log(f"IE test top1 {ie['test']['top1']:.2f} oracle {ie['test']['oracle']:.2f} single {ie['test']['single_top1']:.2f}")
    dump()
    best = None
    for method in args.methods.split(","):
        for k in (int(x) for x in args.ks.split(",")):
            student = copy.deepcopy(base)
            train(student, train_d, method, k, args.spec_epochs, args.spec_lr, teacher_train=teacher_train,
                  seed=10 + k, label=f"{args.kind} {method} k={k}")
            lv, lt = all_logits(student, val_d), all_logits(student, test_d)
            entry = {"val": evaluate(lv, val_d), "test": evaluate(lt, test_d),
                     "assignment_test": family_assignment(method, k, lt, base_test if method == "mclkd" else None,
                                                          test_d)}
            results["ensembles"][f"{method}-k{k}"] = entry
            log(f"{method} k={k}: test top1 {entry['test']['top1']:.2f} oracle {entry['test']['oracle']:.2f} "
                f"(val top1 {entry['val']['top1']:.2f})")
            dump()
            if method == "mclkd" and (best is None or entry["val"]["top1"] > best[0]):
                best = (entry["val"]["top1"], k, copy.deepcopy(student), entry)
    if args.ship and best is not None:
        ship(args, arch, best, results, train_d, test_d)
    dump()
    log(f"done in {(time.time() - t_start) / 60:.1f} min")
    return 0


def ship(args, arch, best, results, train_d, test_d) -> None:
    from engines.core.weights import ModelCard, WeightsStore

    _, k, model, entry = best
    name = f"vqa-{args.kind}-mclkd"
    tensors = {f"members.{key}": v for key, v in model.members.state_dict().items()}
    card = ModelCard(
        name=name, architecture=f"vqa-{args.kind}-ensemble",
        arch_args={"kind": args.kind, "members": M, "k": k, "beta": BETA["mclkd"], "tau": TAU, **arch},
        task="visual question answering on generated CLEVR-like scenes (MCL-KD specialized ensemble)",
        labels=list(S.ANSWERS),
        inputs={"image": f"RGB {S.IMAGE_SIZE}x{S.IMAGE_SIZE} (other sizes are resized), values /255",
                "question": f"lower-case words from a {len(S.VOCAB)}-word vocabulary, at most {S.MAX_TOKENS} tokens",
                "vocabulary": S.VOCAB, "families": list(S.FAMILIES)},
        training_data=(f"engines.textvqa.scenes generator: {args.train_scenes} train scenes x {args.questions} "
                       f"questions ({len(train_d['q_answer'])} questions), split seed {S.SPLIT_SEEDS['train']}; "
                       f"validation {args.val_scenes} scenes, test {args.test_scenes} scenes with their own seeds. "
                       f"Base models (IE) {args.base_epochs} epochs Adam {args.base_lr}; specialists "
                       f"{args.spec_epochs} epochs Adam {args.spec_lr} from their own base, M={M}, k={k}, "
                       f"beta={BETA['mclkd']}, tau={TAU}; torch.set_num_threads(1) on a shared 2-core CPU."),
        training_command=f"python scripts/textvqa/train_vqa.py --kind {args.kind} --results {args.results} --ship",
        metrics={"training_script_test_top1": entry["test"]["top1"], "test_oracle": entry["test"]["oracle"],
                 "test_family_top1": entry["test"]["family_top1"],
                 "ie_test_top1": results["ensembles"]["ie"]["test"]["top1"],
                 "test_questions": int(len(test_d["q_answer"])),
                 "family_assignment_test": entry["assignment_test"],
                 "family_members_top1_test": entry["test"]["family_members_top1"]},
        limits=("Trained only on this synthetic 2-D world (6 colours, 3 shapes, 2 sizes, 2 materials, 3-6 objects, "
                "64x64). Photographs or other scenes give meaningless answers. Questions must use the generator's "
                "vocabulary; unknown words are ignored. Research use only."),
    )
    # the card's headline figure through the engine's own predict (reading, scene check, tokens, ensemble)
    from engines.textvqa import evaluation as E
    from engines.textvqa.vqa_engine import VqaMclKdEngine

    engine = E.with_network(VqaMclKdEngine(), model, card)
    figures = E.vqa_metrics(E.run_vqa(engine, "test", args.test_scenes))
    card.metrics.update({f"engine_{key}": value for key, value in figures.items()})
    card.metrics["test_top1"] = card.metrics["engine_test_top1"]
    out = ROOT / "resources" / "models" / "textvqa"
    out.mkdir(parents=True, exist_ok=True)
    WeightsStore.save(out, name, tensors, card)
    results["shipped"] = {"name": name, "k": k}
    log(f"shipped {name} (k={k})")


if __name__ == "__main__":
    raise SystemExit(main())
