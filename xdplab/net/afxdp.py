"""AF_XDP from Python: a UMEM, its four rings and an XSK socket, over the if_xdp.h ABI.

    with XSK("xl-h1", queue=0) as xsk:          # UMEM + rings + bind (copy mode)
        xsk.redirect(udp_port=4242)              # XSKMAP program: UDP 4242 -> xsk, rest XDP_PASS
        for frame in xsk.packets(count=10):      # per packet (bytes copied out of the UMEM)
            frame.scapy().show()
        b = xsk.recv_batch(256)                  # numpy: b.lengths, b.addrs, b.data, b[i] views
        xsk.send(Ether()/IP()/UDP())             # TX ring, completions reclaimed
        xsk.stats(); xsk.ring_state(); xsk.plot()   # drops, ring levels, live chart
        xsk.drain()                              # throw away what was not read

How it fits together (Documentation/networking/af_xdp.rst):

* The **UMEM** is one page-aligned area of this process's memory (a numpy array here),
  cut into equal frames (``frame_size`` 2048 or 4096). The kernel pins it at
  ``XDP_UMEM_REG``; descriptors carry *offsets* into it, never pointers.
* **Fill** (user -> kernel): frame offsets the kernel may receive into.
  **RX** (kernel -> user): ``xdp_desc {addr, len, options}`` of received frames.
  **TX** (user -> kernel): descriptors of frames to send.
  **Completion** (kernel -> user): offsets of frames the kernel has finished sending.
* Each ring is a single-producer/single-consumer queue of ``size`` (a power of two)
  entries in memory shared with the kernel (mmap at the ``XDP_*PGOFF_*`` offsets; the
  layout inside comes from ``getsockopt(XDP_MMAP_OFFSETS)``). ``producer`` and
  ``consumer`` are free-running u32 indices; ``producer - consumer`` (mod 2**32) is the
  number of entries in the ring; entry ``i`` lives at ``desc[i & (size - 1)]``.

Memory ordering (what libxdp's xsk.h does with __atomic acquire/release):

* consumer side (RX, completion): load ``producer`` (*acquire*), then read the entries,
  then store ``consumer`` (*release*: our reads are done before the kernel may reuse them).
* producer side (fill, TX): load ``consumer`` (*acquire*) to know the free space, write
  the entries, then store ``producer`` (*release*: the entries are visible first).

The index loads/stores are single aligned u32 accesses (ctypes ``c_uint32.value``). On x86
(TSO) the hardware never reorders a load with an earlier load, nor a store with an earlier
load or store, which is exactly acquire-on-load and release-on-store; and every numpy copy
and ctypes access is an opaque C call that no compiler reorders memory accesses across.
So ``_acquire``/``_release`` mark the places and compile to nothing (libxdp also only
emits compiler barriers on x86). Weakly ordered CPUs (arm64, ...) would need real fences
that Python cannot issue: ``XSK`` raises NotSupported there.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import platform
import select
import struct
import threading
import time
from collections import deque
from html import escape

import numpy as np

from .. import failures, kernel
from ..failures import Row
from ..errors import Closable, ClosedError, NotSupported, UsageError, XDPLabError, needs_open
from ..kernel import features
from ..programs import live
from ..programs.program import load
import operator

DESC = np.dtype([("addr", "<u8"), ("len", "<u4"), ("options", "<u4")])   # struct xdp_desc
ADDR = np.dtype("<u8")                                                     # fill/comp entries
STATS = ("rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full",
         "rx_fill_ring_empty_descs", "tx_ring_empty_descs")
RING_NAMES = ("fill", "rx", "tx", "comp")

TSO = features.have("afxdp_rings")   # x86: loads and stores keep program order (kernel/probes.py)


def _acquire():
    """Marks where the ring protocol needs acquire ordering; a no-op on x86 (see the
    module docstring). XSK refuses to run on weakly ordered CPUs."""


_release = _acquire


class XSKError(XDPLabError):
    """An AF_XDP socket could not be set up or used."""


class XSKUsageError(XSKError, UsageError):
    """A bad argument to ``XSK`` (ring or frame sizes, mode, queue): nothing was created."""


MAX_RING = 1 << 31            # ring entries are a u32 power of two (xsk_init_queue)


def _index(v) -> int | None:
    """``v`` as an int if it is an integer (int, numpy integer; not bool), else None."""
    if isinstance(v, bool):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def _pow2(name: str, n) -> int:
    if _index(n) is None or n <= 0 or n & (n - 1) or n > MAX_RING:
        raise XSKUsageError(f"{name} = {n!r} is not a power of two in 1..2**31",
                            hint="AF_XDP rings (and frame sizes) must be powers of two, e.g. 2048")
    return n


#: why the kernel refused an AF_XDP socket's setup or bind, by errno (failures, kind 'afxdp'):
#: ``what`` is the error's message, ``fix`` its hint; a row with ``feature`` is that
#: feature's NotSupported (the registry's)
XSK_FAILURES = failures.register(
    Row("xsk-no-sockets", "no AF_XDP in this kernel", kind="afxdp",
        when={"step": "setup", "errno": errno.EAFNOSUPPORT},
        what="this kernel was built without CONFIG_XDP_SOCKETS"),
    Row("xsk-umem", "UMEM registration refused", kind="afxdp",
        when={"step": "setup", "errno": (errno.ENOMEM, errno.ENOBUFS, errno.EPERM)},
        what="registering the UMEM failed: {strerror}",
        fix="the UMEM is pinned memory: lower num_frames or raise RLIMIT_MEMLOCK "
            "(ulimit -l); creating AF_XDP sockets needs CAP_NET_RAW"),
    Row("xsk-queue-taken", "queue already has a socket", kind="afxdp",
        when={"step": "bind", "errno": errno.EBUSY},
        what="{where} already has an AF_XDP socket bound (this or another process)",
        fix="close the other XSK first (re-running a notebook cell? xsk.close() the old one); "
            "one socket per queue unless they share a UMEM (XDP_SHARED_UMEM)"),
    Row("xsk-no-zerocopy", "zero-copy refused", kind="afxdp",
        when={"step": "bind", "errno": (errno.EOPNOTSUPP, errno.EPROTONOSUPPORT), "zc": True},
        what="bind: {strerror}; use mode='copy'"),
    Row("xsk-bind-refused", "bind refused", kind="afxdp", when={"step": "bind", "errno": errno.EINVAL},
        what="the kernel refused to bind to {where}: {strerror}",
        fix="check the queue id (ethtool -l) and that the rings were set up"),
    Row("xsk-device-gone", "device went away", kind="afxdp", when={"step": "bind", "errno": errno.ENODEV},
        what="{dev} went away", fix="is the lab topology up?"),
)
#: the rows that are a feature's NotSupported
_XSK_FEATURE = {"xsk-no-sockets": "afxdp", "xsk-no-zerocopy": "afxdp_zerocopy"}


def _xsk_error(step: str, e: OSError, fallback: str, **facts) -> XDPLabError:
    """The error for ``e`` at ``step`` ("setup", "bind"): the first matching 'afxdp' row."""
    facts = {"step": step, "errno": e.errno, "strerror": e.strerror, **facts}
    row = failures.find("afxdp", **facts)
    if row is None:
        return XSKError(fallback.format_map(facts))
    if row.key in _XSK_FEATURE:
        what = f"AF_XDP zero-copy on {facts['dev']}" if row.key == "xsk-no-zerocopy" else ""
        return features.error(_XSK_FEATURE[row.key], row.explain(**facts), what)
    return XSKError(row.explain(**facts), hint=row.advice(**facts))


def _setup_error(e: OSError) -> XDPLabError:
    return _xsk_error("setup", e, f"AF_XDP setup failed: {e}")


# --- rings ------------------------------------------------------------------------------

class Ring:
    """One mmap'ed ring. ``producer``/``consumer`` are the kernel-shared u32 indices."""

    def __init__(self, name: str, fd: int, pgoff: int, size: int, off: tuple, dtype):
        prod, cons, desc, flags = off
        self.name, self.size, self.mask = name, size, size - 1
        self.mm = kernel.xsk_mmap(fd, desc + size * dtype.itemsize, pgoff)
        # the shared u32 indices as ctypes objects: ``.value`` is one aligned 32-bit load
        # or store (and several times cheaper than indexing a numpy view)
        self._prod = ctypes.c_uint32.from_buffer(self.mm, prod)
        self._cons = ctypes.c_uint32.from_buffer(self.mm, cons)
        self._flags = ctypes.c_uint32.from_buffer(self.mm, flags)
        self.desc = np.frombuffer(self.mm, dtype, size, desc)

    producer = property(lambda s: s._prod.value)
    consumer = property(lambda s: s._cons.value)

    def level(self) -> int:
        """Entries in the ring now (producer - consumer, mod 2**32)."""
        return (self._prod.value - self._cons.value) & 0xFFFFFFFF

    def needs_wakeup(self) -> bool:
        return bool(self._flags.value & kernel.XDP_RING_NEED_WAKEUP)

    def _spans(self, start: int, n: int):
        i = start & self.mask
        first = min(n, self.size - i)
        return (slice(i, i + first), slice(0, n - first))

    # consumer side (rx, comp)
    def take(self, n: int) -> np.ndarray:
        """Copy up to ``n`` entries out of the ring and release them to the kernel."""
        cons = self._cons.value
        avail = (self._prod.value - cons) & 0xFFFFFFFF
        _acquire()                                  # producer before the entries
        n = min(n, avail)
        if n == 0:
            return self.desc[:0].copy()
        a, b = self._spans(cons, n)
        out = np.concatenate((self.desc[a], self.desc[b])) if b.stop else self.desc[a].copy()
        _release()                                  # entries read before consumer moves
        self._cons.value = (cons + n) & 0xFFFFFFFF
        return out

    # producer side (fill, tx)
    def free(self) -> int:
        v = self.size - ((self._prod.value - self._cons.value) & 0xFFFFFFFF)
        _acquire()
        return v

    def put(self, entries) -> int:
        """Write as many ``entries`` as fit and publish them; returns how many."""
        n = min(len(entries), self.free())
        if n == 0:
            return 0
        prod = self._prod.value
        a, b = self._spans(prod, n)
        first = a.stop - a.start
        self.desc[a] = entries[:first]
        if b.stop:
            self.desc[b] = entries[first:n]
        _release()                                  # entries visible before producer
        self._prod.value = (prod + n) & 0xFFFFFFFF
        return n

    def state(self) -> dict:
        return {"ring": self.name, "size": self.size, "producer": self.producer,
                "consumer": self.consumer, "level": self.level(),
                "need_wakeup": self.needs_wakeup()}

    def close(self) -> None:
        self._prod = self._cons = self._flags = self.desc = None
        self.mm.close()


# --- received frames --------------------------------------------------------------------

class Frame:
    """One received frame, copied out of the UMEM (``data``), and where it was (``addr``)."""

    __slots__ = ("data", "addr")

    def __init__(self, data: bytes, addr: int):
        self.data, self.addr = data, addr

    def __len__(self):
        return len(self.data)

    def scapy(self):
        from scapy.all import Ether
        return Ether(self.data)

    def __repr__(self):
        return f"<Frame {len(self.data)} bytes @umem+{self.addr:#x}: {self.scapy().summary()}>"


class Batch:
    """Frames received in one go. ``lengths``/``addrs`` are numpy arrays; ``b[i]`` is a
    zero-copy numpy view of frame i inside the UMEM, valid until ``release()`` (which
    hands the frames back to the fill ring; the next ``recv_batch`` does it for you).
    ``data`` copies all frames into one (n, max_len) uint8 array (zero padded)."""

    def __init__(self, xsk: "XSK", descs: np.ndarray):
        self._xsk = xsk
        self.addrs = descs["addr"]            # views into our own copy of the descriptors
        self.lengths = descs["len"]
        self.released = False

    def __len__(self):
        return len(self.lengths)

    @property
    def nbytes(self) -> int:
        return int(self.lengths.sum())

    def _check(self):
        if getattr(self._xsk, "closed", False):
            raise ClosedError(f"the batch's {self._xsk._describe()}", "read its frames (released "
                              "with the UMEM)", "copy what you need (b.data, bytes(b[i])) before xsk.close()")
        if self.released:
            raise XSKError("this batch was released: its frames are back in the fill ring",
                           hint="copy what you need (b.data, bytes(b[i])) before release()/the next recv")

    def __getitem__(self, i: int) -> np.ndarray:
        self._check()
        a = int(self.addrs[i])
        return self._xsk.umem[a:a + int(self.lengths[i])]

    def __iter__(self):
        return (bytes(self[i]) for i in range(len(self)))

    @property
    def data(self) -> np.ndarray:
        self._check()
        umem, lengths = self._xsk.umem, self.lengths
        width = int(lengths.max()) if len(self) else 0
        if not width:
            return np.zeros((len(self), 0), np.uint8)
        addrs = self.addrs.astype(np.intp)
        # row i = umem[addr_i : addr_i + width]: one gather over a sliding-window view (a
        # window per byte offset, no copy) instead of an (n, width) index array
        tail = addrs > len(umem) - width        # a short frame whose window runs past the end
        out = np.lib.stride_tricks.sliding_window_view(umem, width)[np.where(tail, 0, addrs)]
        for i in np.flatnonzero(tail):
            out[i, :lengths[i]] = umem[addrs[i]:addrs[i] + lengths[i]]
        if lengths.min() < width:
            out[np.arange(width) >= lengths[:, None]] = 0
        return out

    def scapy(self, i: int | None = None):
        """Decode frame ``i`` (or all frames) with scapy."""
        from scapy.all import Ether
        if i is not None:
            return Ether(bytes(self[i]))
        return [Ether(f) for f in self]

    def release(self) -> None:
        if not self.released:
            self.released = True
            self._xsk._refill(self.addrs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        return f"<Batch {len(self)} frames, {self.nbytes} bytes{' (released)' if self.released else ''}>"


# --- the socket -------------------------------------------------------------------------

MODES = ("copy", "zerocopy", "auto")
BIND_BUSY_WAIT = 1.0          # seconds to retry a bind that finds the queue busy


class XSK(Closable):
    """An AF_XDP socket with its own UMEM, bound to ``dev`` queue ``queue``. After
    ``close()`` every use raises ``ClosedError``.

    ``dev``: interface name (or a lab Host: its root-side veth). ``mode``: ``copy``
    (XDP_COPY, works on every driver), ``zerocopy`` (XDP_ZEROCOPY: the driver DMAs
    straight into the UMEM; NotSupported if it cannot) or ``auto``.
    ``need_wakeup``: XDP_USE_NEED_WAKEUP (the kernel says via ring flags when it must
    be kicked with sendto/recvfrom/poll instead of being kicked every time)."""

    def __init__(self, dev, queue: int = 0, *, frame_size: int = 2048, num_frames: int = 4096,
                 ring_size: int = 2048, rx_size: int | None = None, tx_size: int | None = None,
                 fill_size: int | None = None, comp_size: int | None = None,
                 mode: str = "copy", need_wakeup: bool = True, bind: bool = True):
        self.dev = getattr(dev, "outside", dev)
        self.queue, self.mode = queue, mode
        self.program = self._link = None
        self._owns_program = False
        self.fd = -1
        self.rings: dict[str, Ring] = {}
        self._umem_mm = None
        self._plots = []
        self.bound = False
        if not TSO:
            raise features.error("afxdp_rings", "the ring indices need acquire/release fences Python cannot "
                                 "issue on weakly ordered CPUs; xdplab implements x86 (TSO)",
                                 f"AF_XDP rings from Python on {platform.machine()}")
        if mode not in MODES:
            raise XSKUsageError(f"unknown AF_XDP mode {mode!r}", hint="use 'copy', 'zerocopy' or 'auto'")
        if frame_size not in (2048, 4096) or isinstance(frame_size, bool):
            raise XSKUsageError(f"frame_size {frame_size!r} must be 2048 or 4096",
                           hint="aligned UMEM chunks are a power of two between 2048 and the page size")
        _pow2("ring_size", ring_size)
        sizes = {name: ring_size if n is None else n for name, n in
                 (("fill", fill_size), ("rx", rx_size), ("tx", tx_size), ("comp", comp_size))}
        for name, n in sizes.items():
            _pow2(f"{name}_size", n)      # 0 is refused, not replaced by ring_size
        if _index(num_frames) is None or num_frames <= 0:
            raise XSKUsageError(f"num_frames = {num_frames!r} must be a positive int",
                                hint="UMEM frames: e.g. 4096 (at least twice the fill ring)")
        self.queue = _index(queue)
        if self.queue is None or self.queue < 0:
            self.queue = queue
            raise XSKUsageError(f"queue = {queue!r} must be a queue id (an int >= 0)")
        if sizes["fill"] > num_frames // 2:
            raise XSKUsageError(f"num_frames={num_frames} is too small for a fill ring of {sizes['fill']}",
                           hint="the fill ring is stocked from the UMEM and at least as many frames stay "
                                "for TX: num_frames >= 2 * fill size")
        self.frame_size, self.num_frames, self.sizes = frame_size, num_frames, sizes
        self.need_wakeup = need_wakeup
        self.ifindex = self._ifindex()
        try:
            try:
                self._setup()
            except OSError as e:
                raise _setup_error(e) from None
            if bind:
                self.bind()
        except BaseException:
            self.close()
            raise

    # --- setup ----------------------------------------------------------------------
    def _ifindex(self) -> int:
        idx = kernel.ifindex(self.dev)
        if not idx:
            raise XSKError(f"no interface named {self.dev!r} in this network namespace",
                           hint="AF_XDP binds to an interface of the caller's netns; a lab host's "
                                "root-side veth is host.outside")
        return idx

    def _setup(self) -> None:
        k = kernel
        size = self.frame_size * self.num_frames
        self._umem_mm = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)  # page aligned
        self.umem = np.frombuffer(self._umem_mm, np.uint8)
        self._umem_mv = memoryview(self._umem_mm)       # cheaper slicing than numpy, per packet
        self.fd = k.xsk_socket()
        reg = struct.pack("=QQIIII", self.umem.ctypes.data, size, self.frame_size, 0, 0, 0)
        k.xsk_setsockopt(self.fd, k.XDP_UMEM_REG, reg)
        for opt, name in ((k.XDP_UMEM_FILL_RING, "fill"), (k.XDP_UMEM_COMPLETION_RING, "comp"),
                          (k.XDP_RX_RING, "rx"), (k.XDP_TX_RING, "tx")):
            k.xsk_setsockopt(self.fd, opt, struct.pack("=I", self.sizes[name]))
        offs = struct.unpack("=16Q", k.xsk_getsockopt(self.fd, k.XDP_MMAP_OFFSETS, 128))
        off = {n: offs[i * 4:i * 4 + 4] for i, n in enumerate(("rx", "tx", "fill", "comp"))}
        for name, pgoff, dtype in (("fill", k.XDP_UMEM_PGOFF_FILL_RING, ADDR),
                                   ("comp", k.XDP_UMEM_PGOFF_COMPLETION_RING, ADDR),
                                   ("rx", k.XDP_PGOFF_RX_RING, DESC),
                                   ("tx", k.XDP_PGOFF_TX_RING, DESC)):
            self.rings[name] = Ring(name, self.fd, pgoff, self.sizes[name], off[name], dtype)
        fs, nfill = self.frame_size, self.sizes["fill"]
        self.rings["fill"].put(np.arange(nfill, dtype=np.uint64) * fs)   # RX half of the UMEM
        self._tx_free = list(range(nfill * fs, self.num_frames * fs, fs))  # TX half
        self._pending: deque[Frame] = deque()    # taken off the RX ring by packets(), not yielded
        self.tx_outstanding = 0

    def zerocopy_supported(self) -> bool | None:
        """Does the driver advertise NETDEV_XDP_ACT_XSK_ZEROCOPY? (None: kernel < 6.3
        cannot say)."""
        feats = kernel.netdev_xdp_features(self.ifindex)
        return None if feats is None else bool(feats & kernel.NETDEV_XDP_ACT_XSK_ZEROCOPY)

    def _driver(self) -> str:
        try:
            return os.path.basename(os.readlink(f"/sys/class/net/{self.dev}/device/driver"))
        except OSError:
            kind = kernel.netlink.link_queues(self.dev).get("kind", "-")
            return "?" if kind == "-" else kind

    def _queues(self) -> int:
        try:
            q = os.listdir(f"/sys/class/net/{self.dev}/queues")
        except OSError:
            return 0
        return max(sum(n.startswith("rx-") for n in q), sum(n.startswith("tx-") for n in q))

    @needs_open
    def bind(self) -> "XSK":
        """bind(2) to (dev, queue). One socket per queue, one bind per socket."""
        k = kernel
        if self.bound:
            raise XSKError(f"this socket is already bound to {self.dev} queue {self.queue}",
                           hint="an AF_XDP socket binds once; make another XSK for another queue")
        nq = self._queues()
        if nq and not 0 <= self.queue < nq:
            raise XSKError(f"{self.dev} has no queue {self.queue} (it has {nq}: 0..{nq - 1})",
                           hint="a veth has one queue unless created with numrxqueues; use queue=0")
        zc = {"copy": False, "zerocopy": True, "auto": None}[self.mode]
        if zc is not False:
            supported = self.zerocopy_supported()
            if zc and supported is False:
                raise features.error("afxdp_zerocopy", f"driver {self._driver()} does not advertise XSK_ZEROCOPY "
                                     "(veth never does: it has no DMA rings); use mode='copy'",
                                     f"AF_XDP zero-copy on {self.dev}")
            zc = bool(supported) if zc is None else zc
        flags = (k.XDP_ZEROCOPY if zc else k.XDP_COPY) | (k.XDP_USE_NEED_WAKEUP if self.need_wakeup else 0)
        # EBUSY right after another socket on this queue was closed is transient: the
        # kernel detaches the old buffer pool from the queue on a workqueue
        # (xp_release_deferred), so retry for a moment before calling the queue taken
        deadline = time.monotonic() + BIND_BUSY_WAIT
        while True:
            try:
                k.xsk_bind(self.fd, self.ifindex, self.queue, flags)
                break
            except OSError as e:
                if e.errno == errno.EBUSY and time.monotonic() < deadline:
                    time.sleep(0.005)
                    continue
                raise self._bind_error(e, zc) from None
        self.bound = True
        self.zerocopy = bool(struct.unpack("=I", k.xsk_getsockopt(self.fd, k.XDP_OPTIONS, 4))[0]
                             & k.XDP_OPTIONS_ZEROCOPY)
        return self

    def _bind_error(self, e: OSError, zc: bool) -> XDPLabError:
        return _xsk_error("bind", e, "bind to {where} failed: {strerror}", zc=bool(zc), dev=self.dev,
                          where=f"{self.dev} queue {self.queue}")

    # --- redirecting traffic here ---------------------------------------------------
    @needs_open
    def redirect(self, filter: str | None = None, *, udp_port: int | None = None,
                 mode: str = "native", replace: bool = False, program=None):
        """Attach an XSKMAP program on ``dev``: frames matching ``filter`` (a C expression
        over ``eth, ip4, ip6, udp, tcp, l4, sport, dport``; ``udp_port=N`` means
        ``udp && dport == N``) go to this socket, everything else is XDP_PASS.
        ``program``: a loaded ``redirect_program(...)`` to reuse (not closed by this
        socket, only detached). Returns the XDPProgram (``counters()``: REDIRECT vs PASS)."""
        if not self.bound:
            raise XSKError("bind the socket before redirecting to it")
        own = program is None
        prog = redirect_program(filter, udp_port=udp_port) if own else program
        try:
            prog["xsks_map"][self.queue] = self.fd
            link = prog.attach(self.dev, mode, replace=replace)
        except BaseException:
            if own:
                prog.close()
            raise
        self._release_program()
        self.program, self._link, self._owns_program = prog, link, own
        return prog

    def _release_program(self) -> None:
        if self.program is None:
            return
        if self._owns_program:
            self.program.close()
        elif self._link is not None and self._link.program is self.program:
            self._link.detach()
        self.program = self._link = None

    # --- RX ---------------------------------------------------------------------------
    def _wait_rx(self, timeout: float) -> bool:
        """Kick the kernel if the fill ring asks for it, then poll() for RX up to ``timeout``."""
        fill = self.rings["fill"]
        if not self.need_wakeup or fill.needs_wakeup():
            kernel.xsk_kick(self.fd, tx=False)
        if self.rings["rx"].level():
            return True
        if timeout <= 0:
            return False
        p = select.poll()
        p.register(self.fd, select.POLLIN)
        return bool(p.poll(int(timeout * 1000)))

    def _refill(self, addrs: np.ndarray) -> None:
        base = addrs & np.uint64(~(self.frame_size - 1) & 0xFFFFFFFFFFFFFFFF)  # chunk start
        put = self.rings["fill"].put(base)
        if put != len(base):                         # cannot happen: we only return what we took
            raise XSKError(f"fill ring overflow ({len(base) - put} frames lost)")

    @needs_open
    def recv_batch(self, max_frames: int = 256, timeout: float = 0.0) -> Batch:
        """Take up to ``max_frames`` frames from the RX ring (waiting up to ``timeout`` s
        for the first). The previous batch is released first."""
        prev = getattr(self, "_batch", None)
        if prev is not None:
            prev.release()
        rx = self.rings["rx"]
        if not rx.level():
            self._wait_rx(timeout)
        self._batch = Batch(self, rx.take(max_frames))
        return self._batch

    @needs_open
    def packets(self, count: int | None = None, timeout: float = 1.0):
        """Yield received ``Frame``s (copied out; frames recycled at once) until ``count``
        frames or ``timeout`` seconds without a frame. Frames are taken off the RX ring up
        to 64 at a time; those not yet yielded when the loop is left stay ``pending`` and
        come first next time (``packets``/``recv``; ``recv_batch`` reads the ring only)."""
        got, pending = 0, self._pending
        while count is None or got < count:
            if not pending:
                with self.recv_batch(64 if count is None else min(64, count - got), timeout) as b:
                    if not len(b):
                        return
                    mv = self._umem_mv
                    pending.extend(Frame(bytes(mv[a:a + n]), a)
                                   for a, n in zip(b.addrs.tolist(), b.lengths.tolist()))
            got += 1
            yield pending.popleft()

    @property
    def pending(self) -> int:
        """Frames ``packets()`` took off the RX ring but has not yielded yet."""
        return len(self._pending)

    @needs_open
    def drain(self) -> int:
        """Throw away everything received and not read: the RX ring's frames (back to
        the fill ring) and the pending ones. Returns how many frames that was."""
        n = len(self._pending) + len(self.recv_batch(self.sizes["rx"]))   # all the ring holds
        self._pending.clear()
        self.recv_batch(0)
        return n

    @needs_open
    def recv(self, count: int, timeout: float = 1.0) -> list[Frame]:
        return list(self.packets(count, timeout))

    # --- TX ---------------------------------------------------------------------------
    @needs_open
    def complete(self) -> int:
        """Reclaim frames from the completion ring; returns how many."""
        done = self.rings["comp"].take(self.sizes["comp"])
        self._tx_free.extend(done.tolist())
        self.tx_outstanding -= len(done)
        return len(done)

    def _kick_tx(self) -> None:
        # copy mode: only sendto()/poll() runs the TX ring (xsk_generic_xmit), so always kick;
        # zero-copy: only when the driver set NEED_WAKEUP.
        tx = self.rings["tx"]
        if tx.level() and (not self.zerocopy or not self.need_wakeup or tx.needs_wakeup()):
            kernel.xsk_kick(self.fd, tx=True)

    @needs_open
    def send(self, frames, *, flush: bool = True, timeout: float = 1.0) -> int:
        """Queue frames (bytes or scapy packets) on the TX ring and kick the kernel.
        With ``flush`` wait (up to ``timeout``) until all of them completed.
        Returns how many were queued."""
        if isinstance(frames, (bytes, bytearray, memoryview)) or hasattr(frames, "haslayer"):
            frames = [frames]
        frames = [bytes(f) for f in frames]
        for f in frames:
            if len(f) > self.frame_size:
                raise XSKError(f"a {len(f)}-byte frame does not fit a {self.frame_size}-byte UMEM frame")
        tx, sent, deadline = self.rings["tx"], 0, time.monotonic() + timeout
        while sent < len(frames):
            if not self._tx_free:
                self.complete()
            n = min(len(frames) - sent, len(self._tx_free), tx.free())
            if n == 0:
                self._kick_tx()
                if time.monotonic() > deadline:
                    raise XSKError(f"TX ring stuck: {self.tx_outstanding} frames not completed",
                                   hint="is the interface up? xsk.stats()['tx_invalid_descs']?")
                continue
            descs = np.zeros(n, DESC)
            for i, f in enumerate(frames[sent:sent + n]):
                a = self._tx_free.pop()
                self.umem[a:a + len(f)] = np.frombuffer(f, np.uint8)
                descs[i] = (a, len(f), 0)
            tx.put(descs)
            sent += n
            self.tx_outstanding += n
            self._kick_tx()
        if flush:
            self.flush(max(0.0, deadline - time.monotonic()))
        return sent

    @needs_open
    def flush(self, timeout: float = 1.0) -> int:
        """Kick and reclaim until every queued frame completed; returns frames still pending."""
        deadline = time.monotonic() + timeout
        while self.tx_outstanding:
            self._kick_tx()
            if not self.complete() and time.monotonic() > deadline:
                break
        return self.tx_outstanding

    # --- state ------------------------------------------------------------------------
    @needs_open
    def stats(self) -> dict:
        """XDP_STATISTICS: drops and invalid descriptors, as the kernel counts them."""
        raw = kernel.xsk_getsockopt(self.fd, kernel.XDP_STATISTICS, 8 * len(STATS))
        return dict(zip(STATS, struct.unpack(f"={len(raw) // 8}Q", raw)))

    @needs_open
    def ring_state(self) -> list[dict]:
        return [self.rings[n].state() for n in RING_NAMES]

    @needs_open
    def plot(self, interval: float = 0.25):
        """A live bokeh chart of ring fill levels (``.stop()`` it; ``close()`` stops it too)."""
        plot = RingPlot(self, interval).start()
        self._plots.append(plot)
        return plot

    def close(self) -> None:
        """Detach the program, unmap the rings, close the socket, free the UMEM."""
        for plot in getattr(self, "_plots", ()):
            plot.stop()
        self._release_program()
        if getattr(self, "_batch", None) is not None:
            self._batch.released = True           # its frames died with the UMEM
        self._batch = None
        self._pending = deque()
        for r in self.rings.values():
            r.close()
        self.rings = {}
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.bound = False
        if self._umem_mm is not None:
            self.umem = None
            if getattr(self, "_umem_mv", None) is not None:
                self._umem_mv.release()
            try:
                self._umem_mm.close()
            except BufferError:       # a view the user still holds keeps it alive until GC
                pass
            self._umem_mm = None

    @property
    def closed(self) -> bool:
        return self.fd < 0

    _reopen_hint = "make a new XSK(...)"
    _close_when_collected = True

    def _describe(self) -> str:
        return f"XSK on {self.dev} queue {self.queue}"

    def __repr__(self) -> str:
        if self.closed:
            return f"<XSK {self.dev} q{self.queue} closed>"
        mode = ("zero-copy" if self.zerocopy else "copy") if self.bound else "unbound"
        rings = " ".join(f"{r['ring']}={r['level']}/{r['size']}" for r in self.ring_state())
        stats = " ".join(f"{k}={v}" for k, v in self.stats().items() if v)
        prog = f" prog={self.program.name}#{self.program.id}" if self.program else ""
        pending = f" pending={self.pending}" if self.pending else ""
        return (f"<XSK {self.dev} q{self.queue} {mode} fd={self.fd} umem={self.num_frames}x"
                f"{self.frame_size} {rings}{pending}{prog}{' ' + stats if stats else ''}>")

    def _repr_html_(self) -> str:
        if self.closed:
            return f"<b>XSK</b> {escape(self.dev)} q{self.queue}: closed"
        rows = "".join(
            f"<tr><td>{r['ring']}</td><td>{r['size']}</td><td>{r['producer']}</td><td>{r['consumer']}</td>"
            f"<td><progress max='{r['size']}' value='{r['level']}'></progress> {r['level']}</td>"
            f"<td>{'yes' if r['need_wakeup'] else ''}</td></tr>" for r in self.ring_state())
        stats = "".join(f"<tr><td>{k}</td><td>{v}</td></tr>" for k, v in self.stats().items())
        mode = ("zero-copy" if self.zerocopy else "copy") if self.bound else "unbound"
        prog = (f", program <code>{escape(self.program.name)}</code> id {self.program.id}"
                if self.program else "")
        return (f"<b>AF_XDP socket</b> on <code>{escape(self.dev)}</code> queue {self.queue} "
                f"({mode}, fd {self.fd}{prog}); UMEM {self.num_frames} &times; {self.frame_size} B, "
                f"{len(self._tx_free)} TX frames free"
                "<div style='display:flex;gap:2em'><table><tr><th>ring</th><th>size</th>"
                f"<th>producer</th><th>consumer</th><th>level</th><th>need_wakeup</th></tr>{rows}</table>"
                f"<table><tr><th>XDP_STATISTICS</th><th></th></tr>{stats}</table></div>")


# --- the XSKMAP program -----------------------------------------------------------------

def redirect_program(filter: str | None = None, *, udp_port: int | None = None):
    """Compile and load (not attach) the XSKMAP program for ``filter`` / ``udp_port``."""
    if udp_port is not None:
        filter = f"udp && dport == {int(udp_port)}" + (f" && ({filter})" if filter else "")
    return load(redirect_source(filter or "1"))


def redirect_source(filter: str = "1") -> str:
    """C for an XDP program sending frames that match ``filter`` to the XSK bound to the
    frame's RX queue (``xsks_map[ctx->rx_queue_index]``), XDP_PASS for the rest and for
    queues without a socket (the flags argument of bpf_redirect_map is the fallback)."""
    return f"""BPF_XSKMAP(xsks_map, 64);

int xsk_redirect(struct xdp_md *ctx)
{{
    void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *ip4 = 0;
    struct ipv6hdr *ip6 = 0;
    struct udphdr *udp = 0;
    struct tcphdr *tcp = 0;
    void *l4p = 0;
    u8 l4 = 0;
    u16 sport = 0, dport = 0;

    if ((void *)(eth + 1) > data_end)
        return XDP_PASS;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {{
        ip4 = (void *)(eth + 1);
        if ((void *)(ip4 + 1) > data_end)
            return XDP_PASS;
        l4 = ip4->protocol;
        l4p = (void *)ip4 + ip4->ihl * 4;
    }} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {{
        ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > data_end)
            return XDP_PASS;
        l4 = ip6->nexthdr;
        l4p = ip6 + 1;
    }}
    if (l4p && l4 == IPPROTO_UDP) {{
        udp = l4p;
        if ((void *)(udp + 1) > data_end)
            return XDP_PASS;
        sport = bpf_htons(udp->source);   /* a byte swap: same as ntohs */
        dport = bpf_htons(udp->dest);
    }} else if (l4p && l4 == IPPROTO_TCP) {{
        tcp = l4p;
        if ((void *)(tcp + 1) > data_end)
            return XDP_PASS;
        sport = bpf_htons(tcp->source);
        dport = bpf_htons(tcp->dest);
    }}
    if (!({filter}))
        return XDP_PASS;
    return xsks_map.redirect_map(ctx->rx_queue_index, XDP_PASS);
}}
"""


# --- live view ----------------------------------------------------------------------------

class RingPlot:
    """Bars of the four rings' fill levels (entries / size), refreshed from a thread."""

    def __init__(self, xsk: XSK, interval: float = 0.25):
        from bokeh.models import ColumnDataSource
        from bokeh.plotting import figure
        self.xsk, self.interval = xsk, interval
        self.source = ColumnDataSource({k: v for k, v in self._data().items() if k != "level"})
        # room right of a full bar for its "level/size" label; the title fits the width
        self.fig = figure(y_range=list(RING_NAMES), x_range=(0, 135), height=200, width=640,
                          title=self._title(), toolbar_location=None, min_border_left=70,
                          x_axis_label="% of ring size in use")
        self.fig.xaxis.ticker = [0, 25, 50, 75, 100]
        self.fig.hbar(y="ring", right="pct", height=0.7, source=self.source, color="color")
        self.fig.text(x="pct", y="ring", text="label", source=self.source, x_offset=4,
                      y_offset=6, text_font_size="9pt")
        self.samples = deque(maxlen=2000)          # {ring: level} per update, for checks
        self._stop = threading.Event()
        self._thread = None
        self.widget = live.widget(self.fig)

    def _data(self) -> dict:
        st = self.xsk.ring_state() if not self.xsk.closed else []
        lv = {r["ring"]: r for r in st}
        pct = [100.0 * lv[n]["level"] / lv[n]["size"] if n in lv else 0.0 for n in RING_NAMES]
        return {"ring": list(RING_NAMES), "pct": pct,
                "level": [lv[n]["level"] if n in lv else 0 for n in RING_NAMES],
                "label": [f"{lv[n]['level']}/{lv[n]['size']}" if n in lv else "closed" for n in RING_NAMES],
                "color": ["#4c72b0", "#55a868", "#c44e52", "#8172b2"]}

    def _title(self) -> str:
        if self.xsk.closed:
            return f"XSK {self.xsk.dev} q{self.xsk.queue}: closed"
        s = self.xsk.stats()
        return (f"XSK {self.xsk.dev} q{self.xsk.queue} · ring full {s['rx_ring_full']} · "
                f"fill empty {s['rx_fill_ring_empty_descs']} · dropped {s['rx_dropped']}")

    def update(self) -> None:
        data = self._data()
        self.samples.append(dict(zip(data["ring"], data["level"])))
        self.source.data = {k: v for k, v in data.items() if k != "level"}
        self.fig.title.text = self._title()

    def _run(self):
        while not self._stop.wait(self.interval):
            try:
                self.update()
            except Exception:            # socket closed under us: stop quietly
                break

    def start(self) -> "RingPlot":
        self._thread = threading.Thread(target=self._run, daemon=True, name="xdplab-xsk-plot")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

    def __repr__(self):
        return f"<RingPlot of {self.xsk.dev} q{self.xsk.queue} every {self.interval}s>"
