#!/bin/sh
# The attendee pod's entrypoint: the VM's own bpffs and tracefs, then the single-user server
# (root inside the Kata VM; --allow-root because BPF needs it).
set -e
grep -qs ' /sys/fs/bpf bpf ' /proc/mounts || mount -t bpf bpf /sys/fs/bpf
grep -qs ' /sys/kernel/tracing tracefs ' /proc/mounts || mount -t tracefs tracefs /sys/kernel/tracing
/opt/xdplab/scripts/setup.sh >/dev/null      # links the headers for this VM's kernel (idempotent)
mkdir -p "${XDPLAB_WORKDIR:-/home/jovyan/xdplab-work}"
python -c "from xdplab import workspace; workspace.working_copies(); workspace.install_kernelspec()"
exec "$@" --allow-root --ServerApp.root_dir="${XDPLAB_WORKDIR:-/home/jovyan/xdplab-work}"
