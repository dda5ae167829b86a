"""Package layout only (metadata is in pyproject.toml).

configs/, tasks/ and results/paper/ stay at the top of the repository (the layout users read) and are
shipped inside the package as sinktop_eval.configs / .tasks / .paper, so an installed wheel runs from any
directory (sinktop_eval/resources.py finds them by import). The build maps the folders; nothing is copied
by hand. This file exists because their sub-folders (one per config group or task) must be listed as
packages, and only code can list folders that a new task adds.
"""
from setuptools import find_namespace_packages, setup

SHIPPED = {"sinktop_eval.configs": "configs", "sinktop_eval.tasks": "tasks", "sinktop_eval.paper": "results/paper"}
DATA = ["*.yaml", "*_yaml", "*.py", "*.jsonl", "*.csv", "*.md"]
NOT_PACKAGES = ["*__pycache__*"]

packages = find_namespace_packages(include=["sinktop_eval", "sinktop_eval.*"], exclude=NOT_PACKAGES)
for package, folder in SHIPPED.items():
    packages += [package] + [f"{package}.{sub}" for sub in find_namespace_packages(where=folder, exclude=NOT_PACKAGES)]

setup(packages=packages, package_dir=SHIPPED, package_data={package: DATA for package in packages if package not in
                                                                ("sinktop_eval",)})
