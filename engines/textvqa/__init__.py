"""Textvqa engines: an MCL-KD specialized VQA ensemble and a canvas G2P with non-sequential greedy decoding.

Module import stays light (numpy only); torch is imported when an engine loads.
"""
from engines.textvqa.g2p_engine import G2pNsgdEngine
from engines.textvqa.vqa_engine import VqaMclKdEngine

ENGINES: list = [VqaMclKdEngine, G2pNsgdEngine]
