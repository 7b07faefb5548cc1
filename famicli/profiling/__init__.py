"""Profiling: FLOPs (deformable convolutions counted), parameters, latency, throughput, memory."""
