"""PoseTrack, boxes and dataset files: one reader per format, the issue collector and the validators."""
