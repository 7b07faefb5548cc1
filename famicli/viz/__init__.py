"""Figures of FAMI-Pose's inner workings (``famipose viz``)."""
