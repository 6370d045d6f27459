"""Progress of a long command, on stderr only (stdout stays for the result, JSON included).

On a terminal: a one-line bar per phase, redrawn with the elapsed time while
the phase runs, ended by a new line when the phase completes. Off a terminal
(a pipe, a log file, CI): a heartbeat line every EVERY_S seconds with the
phase and its counts, so a long run is never silent; a command done within
FIRST_S seconds prints nothing at all.

A command has one Progress (`start`, closed by `close_all`); code that reports
counts takes a callback `progress(done, total, what)`, made by `reporter(phase)`.
"""

import sys
import threading
import time

FIRST_S = 2.0  # quicker than this, a command shows no progress
EVERY_S = 5.0  # heartbeat period off a terminal
REDRAW_S = 0.5  # bar refresh on a terminal while nothing is reported
DRAW_EVERY_S = 0.1  # at most this often as counts come in (the last count of a phase always shows)
BAR_WIDTH = 30


def _clock(seconds):
    s = int(seconds)
    return "%d s" % s if s < 60 else "%d min %02d s" % divmod(s, 60)


class Progress:
    """Phase, counts and elapsed time of one command, shown on `stream`
    (default stderr) by a daemon thread; update it from any thread."""

    def __init__(self, label, stream=None, tty=None, first_s=None, every_s=None, clock=time.monotonic):
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.first_s = FIRST_S if first_s is None else first_s
        self.every_s = EVERY_S if every_s is None else every_s
        self.clock = clock
        self.t0 = clock()
        self.phase, self.done, self.total, self.what = "working", 0, 0, ""
        self.shown = False  # a line (or bar) was written
        self._bar_open = False  # a bar is on the line, without its new line yet
        self._drawn_at = -1e9
        self._dirty = False  # counts not drawn yet
        self._ended = None  # the phase whose complete bar was drawn last
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="progress", daemon=True)
        self._thread.start()

    # ---- what the command reports
    def set_phase(self, phase):
        """A new phase, counts not known yet."""
        self.update(phase, 0, 0, "")

    def update(self, phase, done, total, what=""):
        with self._lock:
            changed = phase != self.phase
            if changed and self._bar_open:  # the previous phase's bar keeps its line
                self._write("\n")
                self._bar_open = False
            if not changed and self._ended == phase and done >= total:
                return  # that phase's bar is complete and has its line already
            self.phase, self.done, self.total, self.what = phase, done, total, what
            self._dirty = True
            now = self.clock()
            if (self.tty and self.total and now - self.t0 >= self.first_s
                    and (done >= total or now - self._drawn_at >= DRAW_EVERY_S)):
                self._draw_bar()

    def reporter(self, phase):
        """A callback progress(done, total, what) for this phase."""
        return lambda done, total, what="": self.update(phase, done, total, what)

    def by_phase(self, done, total, phase):
        """A callback progress(done, total, what) whose `what` is the phase (smitp.sim)."""
        self.update(phase, done, total)

    def close(self):
        """Stop the thread; end an open bar, and say how long it took if anything was shown."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            if self.tty and self._dirty and self.total and self.clock() - self.t0 >= self.first_s:
                self._draw_bar()  # the last counts, which a throttled update did not draw
            if self._bar_open:
                self._write("\n")
                self._bar_open = False
            if self.shown and not self.tty:
                self._write("%s: ended after %s\n" % (self.label, _clock(self.clock() - self.t0)))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- drawing (under the lock)
    def _write(self, text):
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nobody reads the progress
            self._stop.set()

    def _counts(self):
        if not self.total:
            return self.phase
        return "%s %d/%d%s" % (self.phase, self.done, self.total, " (%s)" % self.what if self.what else "")

    def line(self):
        """The heartbeat line, without its new line."""
        return "%s: %s, %s" % (self.label, _clock(self.clock() - self.t0), self._counts())

    def _draw_bar(self):
        self._drawn_at = self.clock()
        self._dirty = False
        filled = BAR_WIDTH * min(self.done, self.total) // max(self.total, 1)
        self._write("\r%s %s [%s%s] %d/%d %s %s\x1b[K" % (
            self.label, self.phase, "#" * filled, "." * (BAR_WIDTH - filled), self.done, self.total,
            _clock(self.clock() - self.t0), self.what))
        self.shown = True
        self._bar_open = self.done < self.total
        if not self._bar_open:
            self._write("\n")
            self._ended = self.phase

    def _beat(self):
        if self._stop.wait(self.first_s):
            return
        period = REDRAW_S if self.tty else self.every_s
        while True:
            with self._lock:
                if self.tty:
                    if self._bar_open or (self.total and not self.shown):
                        self._draw_bar()
                else:
                    self._write(self.line() + "\n")
                    self.shown = True
            if self._stop.wait(period):
                return


_open: list[Progress] = []


def start(label, **kw):
    """The progress of a command; close_all() ends it."""
    p = Progress(label, **kw)
    _open.append(p)
    return p


class Silent(Progress):
    """The progress where no command runs (the tools used as a library): shows nothing."""

    def __init__(self):  # no thread, no stream
        self.phase, self.done, self.total, self.what = "working", 0, 0, ""

    def update(self, phase, done, total, what=""):
        self.phase, self.done, self.total, self.what = phase, done, total, what

    def close(self):
        pass


def current():
    """The running command's progress; a silent one when no command runs."""
    return _open[-1] if _open else Silent()


def close_all():
    while _open:
        _open.pop().close()
