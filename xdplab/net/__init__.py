"""The network floor: lab hosts and topologies, devices by name, the traffic generator,
redirect targets, AF_XDP sockets, what drivers support. Imports: programs, kernel, foundation."""
from . import redirect  # noqa: F401  (registers devmap/cpumap writers with programs.typedmaps)
