"""`python -m sinktop_eval +model=<backbone> +pruner=<pruner> [stop=on|off] [ratio=0.1] [tasks=...]` (see runner/cli.py)."""
from .runner.cli import entry_point

if __name__ == "__main__":
    entry_point()
