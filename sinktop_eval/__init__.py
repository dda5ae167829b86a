"""sinktop-eval: a reproducible lmms-eval harness for visual-token pruning in Video LLMs (SToP)."""
__version__ = "0.1.0"
