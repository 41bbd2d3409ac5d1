"""lmscale: predict the loss and downstream error of large, over-trained language-model runs
from a ladder of small ones (Gadre et al. 2024, "Language models scale reliably with
over-training and on downstream tasks").

Importing the package does no work: no file reads, no heavy imports. The public entry points are
in the sub-modules (``lmscale.run_table``, ``lmscale.testbed``, ``lmscale.laws``, ``lmscale.fit``,
``lmscale.predict``, ``lmscale.paper``).
"""

__version__ = "0.1.0"
