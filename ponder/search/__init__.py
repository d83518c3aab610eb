"""Step-level search guided by a process reward model: beam search, DVTS, particle filtering."""
from ponder.search.beam import DVTS, BeamSearch
from ponder.search.particle_filter import ParticleFilter
from ponder.search.steps import Node, Stepper

__all__ = ["BeamSearch", "DVTS", "ParticleFilter", "Node", "Stepper"]
