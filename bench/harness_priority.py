"""Scheduling for bench harnesses that time guests under heavy CPU load."""
import ctypes
import os


def prioritize():
    # Under a thousand computing guest threads this script's own wait for a CPU — before it
    # can call kill(2), and before it can reap — would be counted as kill time (measured with
    # ftrace: up to 2.3 s between taking t0 and the kill). So it runs real-time where it may,
    # else with the fair scheduler's shortest slice; children get the normal policy back.
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(2))
        return "SCHED_FIFO"
    except PermissionError:
        pass
    class Attr(ctypes.Structure):
        _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32),
                    ("flags", ctypes.c_uint64), ("nice", ctypes.c_int32),
                    ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                    ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]
    attr = Attr(ctypes.sizeof(Attr), 0, 1, 0, 0, 100_000, 0, 0)  # SCHED_OTHER, reset on fork
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(314, 0, ctypes.byref(attr), 0) == 0:  # sched_setattr (x86-64)
        return "a 0.1 ms slice"
    return "the default policy (it may wait for a CPU behind computing guests)"
