from app.workspaces.manifest import WorkspaceManifest

MANIFEST = WorkspaceManifest(
    id="textvqa",
    title="Text & VQA",
    summary="Visual question answering and pronunciation",
    view="app.workspaces.textvqa.view:TextVqaWorkspace",
    opens={"image": 5, "image-folder": 5, "text": 10},
    sample="vqa-scene",
    order=40,
    icon="textvqa.svg",
    will_hold=(
        "ask questions about an image and compare the answers of a specialized ensemble",
        "each specialist's answer, confidence and attention map",
        "grapheme-to-phoneme: ARPAbet pronunciations with the decoding order shown step by step",
    ),
)
