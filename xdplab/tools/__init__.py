"""Tools learners measure with: the drop detector, the QoS policer, the fib router, the
receive-path race, memory and multi-buffer. Imports: net and below."""
from . import memory  # noqa: F401  (registers device binding with programs.libbpf)
