"""Step-level search guided by a process reward model: beam search, DVTS, particle filtering,
A*-style best-first search, MCTS."""

from ponder.search.astar import AStar
from ponder.search.beam import DVTS, BeamSearch
from ponder.search.mcts import MCTS
from ponder.search.particle_filter import ParticleFilter
from ponder.search.steps import Node, Stepper

__all__ = ["AStar", "BeamSearch", "DVTS", "MCTS", "ParticleFilter", "Node", "Stepper"]
