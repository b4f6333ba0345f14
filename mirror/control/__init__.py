"""The mirror worker's control plane: gRPC server and client, status rendering, metrics.

Submodules are imported directly (no re-exports here) so that, say, the metrics code
does not pull in gRPC.
"""
