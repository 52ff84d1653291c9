"""Textvqa engines: an MCL-KD specialized VQA ensemble and a canvas G2P with non-sequential greedy decoding.

Module import stays light (numpy only); torch is imported when an engine loads.
"""
from engines.core.domains import DomainManifest
from engines.textvqa.g2p_engine import G2pNsgdEngine
from engines.textvqa.vqa_engine import VqaMclKdEngine

ENGINES: list = [VqaMclKdEngine, G2pNsgdEngine]

# What this domain gives the core (samples, `inspect` describers, readers), found through the
# csi_workstation.domains entry point; each reference is imported only when it is used.
DOMAIN = DomainManifest(
    id="textvqa",
    samples="engines.textvqa.samples:SAMPLES",
    readers={"image": "engines.textvqa.vqa_engine:read_image"},
)
