"""Programs, maps and links: a C source becomes a loaded program (BCC + the verifier),
attached through a bpf_link; its maps, counters, printk lines, captures and test runs.
Imports: ``xdplab.kernel`` and the foundation (errors, paths, display, failures)."""
from . import program, tc, libbpf  # noqa: F401  (tc and libbpf register with program)
