"""Comparing a variant (or a family) with the leaderboard families at matched L0, in three parts:

* :mod:`aenbench.compare.plugins`: importing a user's SAE plugin file (sae-lens is imported only
  when the registration is checked);
* :mod:`aenbench.compare.matching`: the matched-L0 table and its verdicts (pandas);
* :mod:`aenbench.compare.report`: the markdown report, the terminal table and the Pareto plot.

Importing any of them imports neither torch nor sae-lens.
"""

from aenbench.compare.plugins import PluginError, load_plugin, resolve_plugin

__all__ = ["PluginError", "load_plugin", "resolve_plugin"]
