"""lmms-eval task folders of sinktop-eval, shipped inside the package as ``sinktop_eval.tasks`` (see sinktop_eval/resources.py)."""
