"""`csi-workstation covers index|query`: build a cover catalog on Dask, look a song up in it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "covers", help="cover catalogs: 'covers index FOLDER... --out CATALOG.npz', 'covers query CATALOG SONG'",
        description="Find the covers of a song among many recordings without comparing it with each one: "
                    "'index' embeds every recording (the cover-embedding engine, on Dask, resumable) and writes "
                    "one catalog file; 'query' looks a song up in the catalog's hash tables and re-ranks the best "
                    "candidates with the cross-similarity CNN.")
    verbs = p.add_subparsers(dest="covers_command", parser_class=type(p))
    ix = verbs.add_parser("index", help="embed recordings and write a catalog")
    ix.add_argument("inputs", nargs="+", help="recordings or folders of recordings (searched recursively)")
    ix.add_argument("--out", required=True, help="the catalog file (.npz)")
    ix.add_argument("--work", default=None, help="folder for the per-recording embeddings (default: beside the "
                                                  "catalog, CATALOG.parts); a re-run skips what is done")
    ix.add_argument("--scheduler", default=None, help="address of a running Dask scheduler, e.g. tcp://host:8786")
    ix.add_argument("--workers", type=int, default=None, help="local worker processes (default: the core count, "
                                                              "at most 4)")
    q = verbs.add_parser("query", help="rank a catalog's recordings as covers of one song")
    q.add_argument("catalog")
    q.add_argument("song")
    q.add_argument("--top", type=int, default=10, help="how many matches to print (default 10)")
    q.add_argument("--rerank", type=int, default=50, help="how many of the nearest candidates the CNN re-scores, "
                                                          "at least 10, then as many as fit in 1 s (0: hash lookup "
                                                          "only; default 50)")
    q.add_argument("--json", action="store_true")
    return p


def recordings_in(inputs: list[str]) -> list[Path]:
    """Files as given; folders searched recursively for audio, MIDI and MusicXML (hidden entries skipped)."""
    from engines.music_lab.covers import AUDIO_SUFFIXES

    out: list[Path] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
                          and not any(part.startswith(".") for part in f.relative_to(p).parts))
        else:
            out.append(p)
    return out


def cmd_covers(args) -> int:
    from app.cli import UsageError

    if args.covers_command == "index":
        return _index(args)
    if args.covers_command == "query":
        return _query(args)
    raise UsageError("covers needs 'index' or 'query' (see csi-workstation covers --help)")


def _index(args) -> int:
    from app.batch_cli import _Bar
    from engines.core.batch import run_batch
    from engines.core.engine import EngineError
    from engines.core.weights import WeightsStore
    from engines.music_lab.catalog import CatalogError, CoverCatalog
    from engines.music_lab.cover_embed import ARCH, WEIGHTS, CoverEmbeddingEngine, read_entry

    out = Path(args.out).expanduser()
    if out.suffix.lower() != ".npz":
        raise CatalogError(f"cannot write '{out.name}': a cover catalog is written as .npz")
    files = recordings_in(args.inputs)
    if not files:
        raise EngineError("no recordings (audio, MIDI or MusicXML) in " + ", ".join(args.inputs))
    work = Path(args.work).expanduser() if args.work else out.with_name(out.stem + ".parts")
    card = WeightsStore.default().card(WEIGHTS)
    bar = _Bar()
    try:
        summary = run_batch(CoverEmbeddingEngine.id, files, work, scheduler=args.scheduler, workers=args.workers,
                            device="cpu", progress=bar)
    finally:
        bar.close()
    items, failed = [], []
    for item in summary.items:
        if item.status not in ("done", "skipped"):
            failed.append(f"{item.input}: {item.reason}")
            continue
        try:
            items.append(read_entry(next(o for o in item.outputs if o.endswith(".npz"))))
        except (EngineError, StopIteration) as exc:
            failed.append(f"{item.input}: {exc or 'no embedding was written'}")
    for line in failed:
        print(f"failed: {line}", file=sys.stderr)
    if not items:
        raise EngineError(f"no recording could be embedded ({len(failed)} failed); no catalog written")
    catalog = CoverCatalog.from_entries(items, {"name": WEIGHTS, "architecture": ARCH, "sha256": card.sha256,
                                                "k_s": int(card.arch_args.get("k_s", 2)),
                                                "dim": int(card.arch_args.get("dim", len(items[0].embedding)))})
    catalog.save(out)
    print(f"{out}: {len(catalog)} recordings indexed ({summary.count('skipped')} already embedded), "
          f"{len(failed)} failed; {catalog.memory_bytes() / 1e6:.1f} MB to search")
    return 1 if failed else 0


def _query(args) -> int:
    import json

    from app.cli import UsageError
    from engines.music_lab.catalog import CoverCatalog, query_catalog

    if args.top < 1 or args.rerank < 0:
        raise UsageError("--top must be at least 1 and --rerank at least 0")
    catalog_path = Path(args.catalog).expanduser()
    catalog = CoverCatalog.load(catalog_path)
    result = query_catalog(catalog, Path(args.song).expanduser(), top=args.top, rerank=args.rerank,
                           catalog_name=catalog_path.name)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({"query": result.query, "catalog": str(catalog_path), "size": result.size,
                          "scored": result.scored, "reranked": result.reranked, "seconds": result.seconds,
                          "matches": [{"rank": r + 1, "path": m.path, "distance": round(m.distance, 4),
                                       "cover_probability": None if m.probability is None
                                       else round(m.probability, 4)} for r, m in enumerate(result.matches)]},
                         indent=1))
        return 0
    print(f"{Path(result.query).name} in {catalog_path.name}: {result.size} recordings, {result.scored} looked at "
          f"(hash buckets), {result.reranked} re-ranked by the CNN; "
          f"{sum(result.seconds.values()):.2f} s")
    print(f"{'rank':>4}  {'cover p':>7}  {'distance':>8}  recording")
    for r, m in enumerate(result.matches):
        p = "-" if m.probability is None else f"{m.probability:.3f}"
        print(f"{r + 1:>4}  {p:>7}  {m.distance:8.4f}  {m.path}")
    if not result.matches:
        print("no candidates: no recording in the catalog shares a hash bucket with this song")
    return 0
