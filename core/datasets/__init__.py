"""Datasets on disk: rig-render pairs, aligned face crops and their face-parsing labels (numpy)."""
