"""Say on a bare X server (Xvfb, no window manager) which part of the screen is free, as a desktop panel's
window manager does: ``_NET_WORKAREA`` on the root window, named in ``_NET_SUPPORTED`` (Qt reads it for
``QScreen.availableGeometry``). Start Xvfb with ``-noreset``, or the property goes with this client.

    DISPLAY=:57 python scripts/x_workarea.py X Y WIDTH HEIGHT
"""

from __future__ import annotations

import ctypes
import sys


def main(argv: list[str]) -> int:
    area = [int(v) for v in argv]
    if len(area) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    x11 = ctypes.cdll.LoadLibrary("libX11.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XDefaultRootWindow.restype, x11.XDefaultRootWindow.argtypes = ctypes.c_ulong, [ctypes.c_void_p]
    x11.XInternAtom.restype = ctypes.c_ulong
    x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x11.XChangeProperty.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_int,
                                    ctypes.c_int, ctypes.c_void_p, ctypes.c_int]  # fmt: skip
    x11.XFlush.argtypes = x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    display = x11.XOpenDisplay(None)
    if not display:
        print("no X display: set DISPLAY", file=sys.stderr)
        return 1
    root = x11.XDefaultRootWindow(display)

    def atom(name: bytes) -> int:
        return x11.XInternAtom(display, name, 0)

    replace = 0  # PropModeReplace; format 32 data are C longs
    workarea = atom(b"_NET_WORKAREA")
    x11.XChangeProperty(display, root, workarea, atom(b"CARDINAL"), 32, replace, (ctypes.c_long * 4)(*area), 4)
    x11.XChangeProperty(display, root, atom(b"_NET_SUPPORTED"), atom(b"ATOM"), 32, replace,
                        (ctypes.c_long * 1)(workarea), 1)  # fmt: skip
    x11.XFlush(display)
    x11.XCloseDisplay(display)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
