#!/bin/busybox sh
# Init of the 9P test guest (busybox initramfs; see prepare.sh). The kernel
# command line says what to do:
#   sdfs.port=N        the 9P server's port on the host (10.0.2.2)
#   sdfs.m=ANAME       one mount per occurrence, at /mnt/0, /mnt/1, …
#                      (sdfs.m= for the empty aname)
#   sdfs.opts=A,B      more mount options (e.g. cache=loose)
#   sdfs.job=check     describe every mount (ls -laR, md5sum, find -type l,
#                      and, on /mnt/0, the agent) between === markers
#   sdfs.job=bench     time md5sum of every file of /mnt/0 twice
# and it powers off when done.
/bin/busybox mkdir -p /proc /sys /dev /mnt /tmp /usr/bin /sbin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
for m in netfs fscache 9pnet 9pnet_fd virtio_ring virtio virtio_pci_modern_dev \
	virtio_pci_legacy_dev virtio_pci failover net_failover virtio_net 9pnet_virtio 9p; do
	[ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

port=5640 job=check opts= n=0
for w in $(cat /proc/cmdline); do
	case "$w" in
	sdfs.port=*) port=${w#sdfs.port=} ;;
	sdfs.job=*) job=${w#sdfs.job=} ;;
	sdfs.opts=*) opts=,${w#sdfs.opts=} ;;
	sdfs.m=*)
		a=${w#sdfs.m=}
		mkdir -p /mnt/$n
		o=trans=tcp,port=$port,version=9p2000.L,ro,msize=1048576$opts
		[ -n "$a" ] && o=$o,aname=$a
		mount -t 9p -o "$o" 10.0.2.2 /mnt/$n
		echo "=== MOUNT $n rc=$?"
		n=$((n + 1))
		;;
	esac
done

i=0
while [ $i -lt $n ]; do
	d=/mnt/$i
	case "$job" in
	check)
		echo "=== AT $(cut -d" " -f1 /proc/uptime)"
		echo "=== LS $i"
		ls -laR $d 2>&1
		echo "=== AT $(cut -d" " -f1 /proc/uptime)"
		echo "=== MD5 $i"
		find $d -type f -exec md5sum {} + 2>&1
		echo "=== AT $(cut -d" " -f1 /proc/uptime)"
		echo "=== LINKS $i"
		find $d -type l 2>&1
		echo "=== AT $(cut -d" " -f1 /proc/uptime)"
		echo "=== AGENT $i"
		rc=0
		[ $i = 0 ] && { /agent $d 2>&1; rc=$?; }
		echo "=== END $i rc=$rc"
		;;
	bench)
		for pass in 1 2; do
			t0=$(cut -d' ' -f1 /proc/uptime)
			find $d -type f -exec md5sum {} + >/tmp/out 2>&1
			rc=$?
			t1=$(cut -d' ' -f1 /proc/uptime)
			echo "=== TIME $i pass=$pass rc=$rc start=$t0 end=$t1 files=$(wc -l </tmp/out)"
		done
		;;
	esac
	i=$((i + 1))
done
echo "=== AT $(cut -d" " -f1 /proc/uptime)"
echo "=== DONE"
poweroff -f
