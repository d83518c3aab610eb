"""Population methods: sample whole solutions, then choose among them."""

from ponder.samplers.adaptive_consistency import AdaptiveConsistency
from ponder.samplers.best_of_n import BestOfN
from ponder.samplers.greedy import Greedy
from ponder.samplers.self_consistency import SelfConsistency
from ponder.samplers.weighted_best_of_n import WeightedBestOfN

__all__ = ["AdaptiveConsistency", "BestOfN", "Greedy", "SelfConsistency", "WeightedBestOfN"]
