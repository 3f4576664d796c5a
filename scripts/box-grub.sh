#!/bin/sh
# init= of the one boot in `./lab box` (scripts/box.sh): inside the image, on its own disk
# (/dev/vda), install GRUB and write grub.cfg, then power off. Removes itself.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -o remount,rw /
mountpoint -q /proc || mount -t proc proc /proc
mountpoint -q /sys || mount -t sysfs sys /sys
mountpoint -q /dev || mount -t devtmpfs dev /dev
uuid=$(sed -n 's/^UUID=\([^ ]*\) \/ .*/\1/p' /etc/fstab)
# no udev here, so no /dev/disk/by-uuid: update-grub names /dev/vda1; the VM boots by UUID
if grub-install --target=i386-pc /dev/vda && update-grub \
   && sed -i "s#root=/dev/vda1#root=UUID=$uuid#g" /boot/grub/grub.cfg \
   && grep -q "root=UUID=$uuid" /boot/grub/grub.cfg; then
  echo "XDPLAB-BOX-GRUB-OK"
else
  echo "XDPLAB-BOX-GRUB-FAILED"
fi
rm -f /usr/local/sbin/xdplab-box-grub
sync
mount -o remount,ro /     # a clean file system: the first boot replays no journal
echo o > /proc/sysrq-trigger
sleep 10
