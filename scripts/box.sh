#!/usr/bin/env bash
# ./lab box: build the xdplab Vagrant box (provider libvirt) from Debian's archive, locally.
#
#   ./lab box                 build it if missing or out of date, then `vagrant box add` it
#   ./lab box --rebuild       build it again
#   ./lab box --check         exit 0 if the cached box is up to date, 1 if not (builds nothing)
#
# The box: Debian 12 (debootstrap), Debian's 6.12 kernel and its headers (bookworm-security),
# GRUB, systemd-networkd (DHCP on the management NIC), sshd, the `vagrant` user with Vagrant's
# insecure public key and passwordless sudo, virtio drivers in the initramfs, and the lab
# pre-installed by the same scripts/setup.sh as everywhere else (run in the image's chroot
# with `uname -r` answering the box's kernel), so the first `vagrant up` installs nothing.
#
# Result: $XDPLAB_BOX_DIR/xdplab-debian12.box (default /var/cache/xdplab/box), a tar of
# box.img (compressed qcow2), metadata.json and a Vagrantfile; added to Vagrant as
# `xdplab-debian12`. It is rebuilt only when what it bakes in changes: this script (the base
# packages, the kernel, the system setup) or scripts/box-grub.sh (their hash is in
# xdplab-debian12.json). A later change to scripts/setup.sh or requirements.txt does not make
# it stale: `vagrant up` runs setup.sh against the synced checkout, which installs only what
# the box lacks (through the VM's NAT management network). The Vagrantfile uses it when it exists.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BOX_DIR=${XDPLAB_BOX_DIR:-/var/cache/xdplab/box}
NAME=xdplab-debian12
BOX=$BOX_DIR/$NAME.box
STAMP=$BOX_DIR/$NAME.json
MIRROR=${XDPLAB_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${XDPLAB_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
DISK_GB=${XDPLAB_BOX_DISK_GB:-20}          # the VM's disk (sparse; the box holds only what is used)
T0=$(date +%s)

say() { printf '\033[1m[xdplab box %4ss]\033[0m %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { printf 'xdplab box: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, loop devices, chroot)"

mode=build
case "${1:-}" in
  "") ;;
  --rebuild) mode=rebuild ;;
  --check) mode=check ;;
  -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown option '$1' (accepted: --rebuild, --check, --help)" ;;
esac

# the cache key: what the box bakes in that provisioning cannot fix (not setup.sh: see above)
inputs_hash() {
  cat "$REPO/scripts/box.sh" "$REPO/scripts/box-grub.sh" | sha256sum | cut -d' ' -f1
}
# the lab's install inputs at build time (the Vagrant provisioner installs any difference)
setup_hash() {
  cat "$REPO/scripts/setup.sh" "$REPO/requirements.txt" | sha256sum | cut -d' ' -f1
}
WANT=$(inputs_hash)
up_to_date() { [ -f "$BOX" ] && [ -f "$STAMP" ] && grep -q "\"inputs\": \"$WANT\"" "$STAMP"; }

box_add() {
  # `vagrant box add` unpacks it under ~/.vagrant.d (VAGRANT_HOME); vagrant-libvirt uploads
  # box.img into the storage pool at the first `vagrant up`.
  if ! command -v vagrant >/dev/null; then
    say "vagrant is not installed: the box is $BOX (add it with: vagrant box add --name $NAME $BOX)"
    return
  fi
  local have
  have=$(vagrant box list --machine-readable 2>/dev/null | awk -F, '$3=="box-name"{print $4}' | grep -cx "$NAME" || true)
  if [ "$have" != 0 ] && [ -f "$BOX_DIR/.added" ] && [ "$(cat "$BOX_DIR/.added")" = "$WANT" ]; then
    say "vagrant already has the box $NAME"
    return
  fi
  # an older image of this box may still be in libvirt's pool under the same name
  if command -v virsh >/dev/null && virsh -q pool-info default >/dev/null 2>&1; then
    for v in $(virsh -q vol-list default 2>/dev/null | awk '{print $1}' | grep "^${NAME}_vagrant_box_image" || true); do
      virsh -q vol-delete --pool default "$v" >/dev/null 2>&1 && say "removed the old pool volume $v" || true
    done
  fi
  say "vagrant box add --name $NAME $BOX"
  vagrant box add --force --name "$NAME" "$BOX" >/dev/null
  echo "$WANT" > "$BOX_DIR/.added"
  say "added: \`vagrant up\` in the checkout uses it"
}

if [ "$mode" = check ]; then
  if up_to_date; then
    if grep -q "\"setup\": \"$(setup_hash)\"" "$STAMP"; then
      echo "$BOX is up to date"
    else
      echo "$BOX is up to date (scripts/setup.sh or requirements.txt changed since: \`vagrant up\` installs the difference)"
    fi
    exit 0
  fi
  echo "$BOX is missing or out of date (./lab box builds it)"; exit 1
fi
if [ "$mode" = build ] && up_to_date; then
  say "cached: $BOX ($(du -h "$BOX" | cut -f1); built $(sed -n 's/.*"built": "\([^"]*\)".*/\1/p' "$STAMP")); --rebuild to build it again"
  box_add
  exit 0
fi

# the build's mounts (image, chroot's /proc /sys /dev, setup.sh's bpffs) live in a mount
# namespace of their own: they vanish with it, whatever happens
if [ -z "${XDPLAB_BOX_NS:-}" ]; then
  exec unshare -m --propagation private env XDPLAB_BOX_NS=1 "$0" "$@"
fi

for tool in debootstrap qemu-img sfdisk losetup mkfs.ext4; do
  command -v "$tool" >/dev/null || die "$tool is missing (./lab box installs it through scripts/setup.sh)"
done
KEY=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1 || true)
[ -n "${XDPLAB_VAGRANT_PUBKEY:-}" ] && KEY=$XDPLAB_VAGRANT_PUBKEY
[ -n "$KEY" ] && [ -f "$KEY" ] || die "Vagrant's insecure public key (keys/vagrant.pub) not found: install vagrant or set XDPLAB_VAGRANT_PUBKEY"

mkdir -p "$BOX_DIR"
WORK=$(mktemp -d "$BOX_DIR/build.XXXXXX")
LOG=$WORK/build.log
MNT=$WORK/root
RAW=$WORK/disk.raw
LOOP=""

cleanup() {
  local rc=$1
  set +e
  mountpoint -q "$MNT" && umount -R "$MNT"
  [ -n "$LOOP" ] && losetup -d "$LOOP"
  if [ "$rc" != 0 ]; then
    cp "$LOG" "$BOX_DIR/last-build.log" 2>/dev/null
    echo "xdplab box: FAILED (exit $rc); the build log is $BOX_DIR/last-build.log" >&2
  fi
  rm -rf "$WORK"
}
trap 'cleanup $?' EXIT
trap 'exit 130' INT TERM

# run CMD with its output in the log; progress = the last line matching REGEX (on a terminal,
# rewritten in place; otherwise one such line every 20 s)
step() {
  local regex=$1; shift
  echo "+ $1 ... ${*: -1}" >> "$LOG"
  "$@" 2>&1 | tee -a "$LOG" | {
    last=0
    while IFS= read -r line; do
      [[ $line =~ $regex ]] || continue
      now=$(date +%s)
      if [ -t 1 ]; then
        printf '\r\033[K  %.100s' "$line"
      elif [ $((now - last)) -ge 20 ]; then
        printf '  %s\n' "${line:0:100}"; last=$now
      fi
    done
    if [ -t 1 ]; then printf '\r\033[K'; fi
  }
}
in_root() { chroot "$MNT" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"; }

say "building $BOX (work dir $WORK; log $LOG)"

# 1. disk: one MBR partition, ext4 -------------------------------------------------------
say "1/9 disk: ${DISK_GB} GiB sparse, one ext4 partition"
truncate -s "${DISK_GB}G" "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk -q "$RAW" >> "$LOG"
# the partition through a loop device at its offset (no partition scan or udev needed)
LOOP=$(losetup --show -f -o $((2048 * 512)) "$RAW")
PART=$LOOP
mkfs.ext4 -q -L xdplab-root -E lazy_itable_init=0,lazy_journal_init=0 "$PART"
UUID=$(blkid -s UUID -o value "$PART")
mkdir -p "$MNT"
mount -o discard "$PART" "$MNT"

# 2. Debian 12 base -----------------------------------------------------------------------
say "2/9 debootstrap bookworm from $MIRROR (minbase + systemd, sshd, sudo, rsync)"
# downloaded .debs are kept in $BOX_DIR/debs: a rebuild fetches only what changed
mkdir -p "$BOX_DIR/debs/partial"
step '^I: ' debootstrap --variant=minbase --cache-dir="$BOX_DIR/debs" \
  --include=systemd-sysv,udev,dbus,kmod,initramfs-tools,iproute2,procps,openssh-server,sudo,rsync,ca-certificates,less,zstd \
  bookworm "$MNT" "$MIRROR"
mount --bind "$BOX_DIR/debs" "$MNT/var/cache/apt/archives"
mount -t proc proc "$MNT/proc"
mount -t sysfs sys "$MNT/sys"
mount --bind /dev "$MNT/dev"
mount -t devpts -o newinstance,ptmxmode=0666 devpts "$MNT/dev/pts"
mount -t tmpfs tmpfs "$MNT/run"
mount -t tmpfs tmpfs "$MNT/tmp"
cp /etc/resolv.conf "$MNT/etc/resolv.conf.build"
rm -f "$MNT/etc/resolv.conf"
cp "$MNT/etc/resolv.conf.build" "$MNT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$MNT/usr/sbin/policy-rc.d"   # no daemons start in the chroot
chmod 755 "$MNT/usr/sbin/policy-rc.d"
cat > "$MNT/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
EOF
# no docs, man pages or translations in the box (the Debian "minimized" image rules)
cat > "$MNT/etc/dpkg/dpkg.cfg.d/xdplab-minimal" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
echo 'APT::Install-Recommends "false";' > "$MNT/etc/apt/apt.conf.d/90xdplab-norecommends"

# 3. the 6.12 kernel, its headers, GRUB ---------------------------------------------------
say "3/9 apt-get update in the image"
step '^(Get|Hit)' in_root apt-get update
KPKG=$(in_root apt-cache pkgnames linux-image-6.12 | grep -E '^linux-image-6\.12\.[0-9]+\+deb12-amd64$' | sort -V | tail -n1 || true)
[ -n "$KPKG" ] || die "no linux-image-6.12.*+deb12-amd64 in bookworm-security (apt-cache pkgnames linux-image-6.12)"
KREL=${KPKG#linux-image-}
say "4/9 installing $KPKG, linux-headers-$KREL, GRUB, systemd-resolved"
mkdir -p "$MNT/etc/initramfs-tools/conf.d"
printf 'virtio_pci\nvirtio_blk\nvirtio_scsi\nvirtio_net\next4\n' >> "$MNT/etc/initramfs-tools/modules"
echo 'COMPRESS=zstd' > "$MNT/etc/initramfs-tools/conf.d/xdplab-compress"
mkdir -p "$MNT/etc/default/grub.d"
cat > "$MNT/etc/default/grub.d/xdplab.cfg" <<'EOF'
GRUB_TIMEOUT=1
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="net.ifnames=0 biosdevname=0 console=tty0 console=ttyS0,115200n8"
GRUB_TERMINAL="console serial"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_DISABLE_OS_PROBER=true
EOF
echo "grub-pc grub-pc/install_devices_empty boolean true" | in_root debconf-set-selections
step '^(Unpacking|Setting up) ' in_root apt-get install -y -q \
  "$KPKG" "linux-headers-$KREL" grub-pc systemd-resolved
# systemd-resolved made /etc/resolv.conf its stub (no resolved runs in a chroot): the build's
# own resolv.conf until the end
rm -f "$MNT/etc/resolv.conf"
cp "$MNT/etc/resolv.conf.build" "$MNT/etc/resolv.conf"
# GRUB goes onto the disk at the end, from inside the image (step 8/9)

# 4. system configuration -------------------------------------------------------------------
say "5/9 system: fstab, hostname, DHCP on eth0 (systemd-networkd), sshd, the vagrant user"
echo "UUID=$UUID / ext4 errors=remount-ro,discard 0 1" > "$MNT/etc/fstab"
echo xdplab > "$MNT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\txdplab\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$MNT/etc/hosts"
cat > "$MNT/etc/systemd/network/10-eth0-dhcp.network" <<'EOF'
[Match]
Name=eth0

[Network]
DHCP=ipv4
EOF
in_root systemctl enable systemd-networkd systemd-resolved ssh >> "$LOG" 2>&1
in_root systemctl mask systemd-networkd-wait-online.service >> "$LOG" 2>&1 || true
# no background apt in the VM: apt-daily would hold dpkg's lock while `vagrant up` provisions
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
  >> "$LOG" 2>&1 || true
# the lab VM needs no nested KVM: under TCG, loading kvm (the CPU model "maximum" offers
# vmx) took minutes with soft lockups at boot
printf 'blacklist kvm_intel\nblacklist kvm_amd\nblacklist kvm\n' > "$MNT/etc/modprobe.d/xdplab-no-kvm.conf"
# host keys are made at first boot (each VM its own), not baked into the box; ECDSA and
# Ed25519 only: `ssh-keygen -A`'s RSA 3072 key took longer than systemd's 90 s start
# timeout under TCG (sshd never came up)
rm -f "$MNT"/etc/ssh/ssh_host_*
mkdir -p "$MNT/etc/systemd/system/ssh.service.d"
cat > "$MNT/etc/systemd/system/ssh.service.d/xdplab-hostkeys.conf" <<'UNIT'
[Service]
TimeoutStartSec=600
ExecStartPre=
ExecStartPre=/bin/sh -c 'for t in ecdsa ed25519; do f=/etc/ssh/ssh_host_$${t}_key; [ -s $$f ] || ssh-keygen -q -t $$t -N "" -f $$f; done'
ExecStartPre=/usr/sbin/sshd -t
UNIT
printf 'UseDNS no\nHostKey /etc/ssh/ssh_host_ed25519_key\nHostKey /etc/ssh/ssh_host_ecdsa_key\n' \
  > "$MNT/etc/ssh/sshd_config.d/xdplab.conf"
in_root useradd -m -s /bin/bash -G sudo vagrant
install -d -m 700 -o 1000 -g 1000 "$MNT/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$KEY" "$MNT/home/vagrant/.ssh/authorized_keys"
[ "$(stat -c %u "$MNT/home/vagrant")" = 1000 ] || die "the vagrant user is not uid 1000"
echo 'vagrant ALL=(ALL) NOPASSWD: ALL' > "$MNT/etc/sudoers.d/vagrant"
chmod 440 "$MNT/etc/sudoers.d/vagrant"
in_root passwd -l root >> "$LOG" 2>&1

# 5. the lab, by scripts/setup.sh -----------------------------------------------------------
say "6/9 scripts/setup.sh in the image (Debian packages + /opt/xdplab-venv; the longest step)"
# this checkout goes where `vagrant up` rsyncs it (/vagrant), so what setup.sh writes with
# its path (the Jupyter kernelspec) is already right in the VM; rsync then only updates it
mkdir -p "$MNT/vagrant" "$MNT/tmp/xdplab-setup/bin"
tar -C "$REPO" --exclude=.git --exclude=__pycache__ --exclude=.ipynb_checkpoints --exclude=.vagrant \
  --exclude=.pytest_cache -cf - . | tar -C "$MNT/vagrant" -xf -
chown -R 1000:1000 "$MNT/vagrant"
# setup.sh links BCC's headers for `uname -r`: in the chroot that must be the box's kernel
printf '#!/bin/sh\ncase "$1" in -r) echo %s;; *) exec /usr/bin/uname "$@";; esac\n' "$KREL" \
  > "$MNT/tmp/xdplab-setup/bin/uname"
chmod 755 "$MNT/tmp/xdplab-setup/bin/uname"
SETUP_ENV=(/usr/bin/env -i PATH=/tmp/xdplab-setup/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
           HOME=/tmp/xdplab-setup/home LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1)
# pip in the image uses this machine's pip settings and CA trust (a PyPI mirror, a proxy's
# CA): the PIP_* variables, pip.conf files and the CA bundle, under the chroot's /tmp (a
# tmpfs: none of it stays in the box)
# (the PIP_* values go through a 0600 file sourced in the chroot, never through argv)
mkdir -p "$MNT/tmp/xdplab-setup/home/.config/pip"
( umask 077
  while IFS='=' read -r k v; do
    case "$k" in PIP_CERT|PIP_CONFIG_FILE) ;; PIP_*) printf 'export %s=%q\n' "$k" "$v" ;; esac
  done < <(env) > "$MNT/tmp/xdplab-setup/pip.env" )
ca=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-}}}
if [ -n "$ca" ] && [ -f "$ca" ]; then
  cp "$ca" "$MNT/tmp/xdplab-setup/ca.pem"
  SETUP_ENV+=(PIP_CERT=/tmp/xdplab-setup/ca.pem SSL_CERT_FILE=/tmp/xdplab-setup/ca.pem
              REQUESTS_CA_BUNDLE=/tmp/xdplab-setup/ca.pem)
fi
conf=${PIP_CONFIG_FILE:-/etc/pip.conf}
if [ -f "$conf" ]; then
  cp "$conf" "$MNT/tmp/xdplab-setup/pip.conf"
  SETUP_ENV+=(PIP_CONFIG_FILE=/tmp/xdplab-setup/pip.conf)
fi
[ -f "$HOME/.config/pip/pip.conf" ] && cp "$HOME/.config/pip/pip.conf" "$MNT/tmp/xdplab-setup/home/.config/pip/"
step '^(Unpacking|Setting up|Collecting|Downloading) |xdplab setup' \
  chroot "$MNT" "${SETUP_ENV[@]}" /bin/bash -c '. /tmp/xdplab-setup/pip.env; exec /vagrant/scripts/setup.sh'
grep -h 'xdplab setup' "$LOG" | sed 's/\x1b\[[0-9;]*m//g; s/^/  /' | tail -n 8
# the second run must install nothing: that is what `vagrant up` runs
chroot "$MNT" "${SETUP_ENV[@]}" /bin/bash -c '. /tmp/xdplab-setup/pip.env; exec /vagrant/scripts/setup.sh' \
  > "$WORK/setup2.log" 2>&1
cat "$WORK/setup2.log" >> "$LOG"
if grep -q 'installing:\|pip install' "$WORK/setup2.log"; then
  die "a second scripts/setup.sh in the image still installs: $(grep 'installing:\|pip install' "$WORK/setup2.log")"
fi
[ "$(readlink "$MNT/lib/modules/$KREL/build")" != "" ] || die "setup.sh did not link headers for $KREL"

# 6. shrink -----------------------------------------------------------------------------------
say "7/9 cleaning: apt caches and lists, logs, machine-id (each VM makes its own)"
umount "$MNT/var/cache/apt/archives"
in_root apt-get clean
rm -rf "$MNT"/var/lib/apt/lists/* "$MNT"/tmp/xdplab-setup "$MNT"/root/.cache "$MNT"/var/log/*.log \
  "$MNT"/var/cache/debconf/*-old "$MNT"/var/lib/dpkg/*-old "$MNT/usr/sbin/policy-rc.d" "$MNT/etc/resolv.conf.build"
find "$MNT/opt/xdplab-venv" "$MNT/vagrant" -name __pycache__ -prune -exec rm -rf {} + 2>/dev/null || true
ln -sfn /run/systemd/resolve/stub-resolv.conf "$MNT/etc/resolv.conf"
: > "$MNT/etc/machine-id"
rm -f "$MNT/var/lib/dbus/machine-id"
USED=$(df -BM --output=used "$MNT" | tail -n1 | tr -d ' ')
# GRUB is installed by the image's own grub-install on its own disk, in one short boot
# under qemu: the build machine needs no partitioned loop devices or udev
cp "$MNT/boot/vmlinuz-$KREL" "$MNT/boot/initrd.img-$KREL" "$WORK/"
cp "$REPO/scripts/box-grub.sh" "$MNT/usr/local/sbin/xdplab-box-grub"
chmod 755 "$MNT/usr/local/sbin/xdplab-box-grub"
for m in dev proc sys run tmp; do umount -R "$MNT/$m"; done
fstrim "$MNT" >> "$LOG" 2>&1 || true    # freed blocks become holes in disk.raw
umount "$MNT"
losetup -d "$LOOP"; LOOP=""

# KVM only with hardware virtualisation: /dev/kvm without vmx/svm opens and then aborts qemu
accel=tcg
if [ -r /dev/kvm ] && [ -w /dev/kvm ] && grep -qE '^flags.*\b(vmx|svm)\b' /proc/cpuinfo; then accel=kvm; fi
say "8/9 booting the image once under qemu ($accel) to install GRUB"
timeout 900 qemu-system-x86_64 -machine accel=$accel -cpu max -m 1024 -smp 2 -nodefaults -no-reboot \
  -display none -serial stdio -drive "file=$RAW,format=raw,if=virtio,discard=unmap" \
  -kernel "$WORK/vmlinuz-$KREL" -initrd "$WORK/initrd.img-$KREL" \
  -append "root=UUID=$UUID rw console=ttyS0 panic=-1 init=/usr/local/sbin/xdplab-box-grub" \
  < /dev/null > "$WORK/grub-boot.log" 2>&1 || true
cat "$WORK/grub-boot.log" >> "$LOG"
grep -q XDPLAB-BOX-GRUB-OK "$WORK/grub-boot.log" \
  || die "GRUB was not installed (the VM's console is at the end of the build log)"

# 7. the box -----------------------------------------------------------------------------------
say "9/9 box.img (compressed qcow2 of $USED used) and the .box tar"
# progress: one line per 10% (qemu-img -p redraws "(12.34/100%)" with carriage returns)
qemu-img convert -p -c -O qcow2 "$RAW" "$WORK/box.img" | tr '\r' '\n' \
  | awk -F'[(/]' '/%\)/ { p = int($2 / 10) } p > last { printf "  %d%%\n", p * 10; last = p; fflush() }'
rm -f "$RAW"
cat > "$WORK/metadata.json" <<EOF
{"provider": "libvirt", "format": "qcow2", "virtual_size": $DISK_GB}
EOF
cat > "$WORK/Vagrantfile" <<'EOF'
# xdplab-debian12: built by `./lab box` (scripts/box.sh in the xdplab checkout)
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |lv|
    lv.disk_bus = "virtio"
  end
end
EOF
cat > "$WORK/info.json" <<EOF
{"name": "$NAME", "kernel": "$KREL", "built": "$(date -u +%FT%TZ)", "builder": "xdplab scripts/box.sh"}
EOF
tar -C "$WORK" -cf "$BOX.tmp" metadata.json Vagrantfile info.json box.img
mv -f "$BOX.tmp" "$BOX"
cat > "$STAMP" <<EOF
{"inputs": "$WANT", "setup": "$(setup_hash)", "kernel": "$KREL", "built": "$(date -u +%FT%TZ)", "build_s": $(( $(date +%s) - T0 )), "used": "$USED", "size": "$(du -h "$BOX" | cut -f1)"}
EOF
say "built $BOX: $(du -h "$BOX" | cut -f1), kernel $KREL, $(( $(date +%s) - T0 )) s"
box_add
