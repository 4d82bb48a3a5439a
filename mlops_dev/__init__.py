"""Development tooling of the mlops-ops repository, outside the wheel: the demo driver of the flights reference
project, the embedded local stack behind ``make up`` / ``make down``, process supervision and the MLflow
basic-auth accounts those start with. Run from the repository root: ``python -m mlops_dev --help``."""
