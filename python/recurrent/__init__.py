"""recurrent: torch.nn's recurrent layers (LSTM, GRU, RNN and their cells), fast on the CPU.

The drop-in modules are in :mod:`recurrent.torch`::

    from recurrent.torch import LSTM   # instead of: from torch.nn import LSTM

``python -m recurrent.bench`` compares them with torch.nn on this machine.
"""

from ._native import __version__

__all__ = ["__version__"]
