"""The SToP paper's reported numbers, shipped inside the package as ``sinktop_eval.paper`` (see sinktop_eval/resources.py)."""
