"""mlops-ops: Airflow 3 operators, sensors and DAGs for the machine-learning lifecycle.

Importing this package is cheap on purpose: the dag-processor imports it on every parse, so nothing heavy
(mlflow, pandas, sklearn, ...) is imported here or at the top of any operator module.
"""

from __future__ import annotations

__version__ = "0.1.0"
