from app.workspaces.manifest import WorkspaceManifest

MANIFEST = WorkspaceManifest(
    id="music",
    title="Music",
    summary="Audio, chords, melodies and covers",
    view="app.workspaces.music.view:MusicWorkspace",
    opens={"audio": 10, "audio-folder": 10, "midi": 10, "score": 10},
    sample="chorale-audio",
    samples=(("chorale-audio", "Bach chorale BWV 153.1 on piano, with its reference chords"),
             ("real-song", "A real rock song: 40 s of Sectoid's 'Feelings' (Frets on Fire, MIT)")),
    order=30,
    icon="music.svg",
    will_hold=(
        "WAV, FLAC, OGG, MP3, MIDI and MusicXML with waveform, spectrogram and chromagram",
        "a chord timeline you can hear, edit, transpose and export (.lab, MIDI, MusicXML, WAV)",
        "melody harmonization, melody generation over chords, cover-song identification",
    ),
)
