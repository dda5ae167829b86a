"""Hydra config groups of sinktop-eval, shipped inside the package as ``sinktop_eval.configs`` (see sinktop_eval/resources.py)."""
