"""SynthTrack: a generated PoseTrack-format video set, its figures, and the bundled demo."""
