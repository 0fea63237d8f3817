"""Multi-user analyses (handoffs, collaboration, sequences, paths, champions) behind one registry."""

from accountlens.analysis.registry import ANALYSES, Analysis, AnalysisRequest, run_analysis

__all__ = ["ANALYSES", "Analysis", "AnalysisRequest", "run_analysis"]
