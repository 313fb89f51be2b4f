"""The rules every `mbnode` subcommand follows (docs/cli.md), in one place.

- Exit codes: OK 0, ERROR 1 (it ran and could not do what was asked), USAGE 2 (arguments or
  configuration refused before anything was done), INTERRUPTED 130 (Ctrl-C). `guard` turns a
  subcommand's exceptions into them with one line on stderr, never a traceback.
- `--json`: `print_json` writes the one JSON document of a command that prints results;
  `print_json_line` one line of a stream. Errors stay one line on stderr with the same codes.
- `--help` shows every option's default: `Parser` uses `HelpFormatter` for the command and
  its subcommands.
- Progress goes to stderr: `Progress`, a bar where the total is known when stderr is a
  terminal, plain lines (or nothing) otherwise.

A subcommand is a parser block in cli.py and a function in a module of its own; the function
returns an exit code (normally OK) or raises UsageError / ValueError / OSError / RuntimeError.
"""

import argparse
import json
import shutil
import sys
import time

OK, ERROR, USAGE, INTERRUPTED = 0, 1, 2, 130

# The table of docs/cli.md; tests/test_cli_conventions.py checks that the doc says the same.
EXIT_CODES = ((OK, "done: the result is on stdout"),
              (ERROR, "it ran and could not do what was asked: nothing answered, a refusal, a port "
                      "that went away, a tool missing"),
              (USAGE, "arguments or configuration refused before anything was done"),
              (INTERRUPTED, "Ctrl-C (SIGINT): stopped; what was done so far may be printed"))


class UsageError(ValueError):
    """Arguments or configuration refused before anything was done: exit USAGE."""


class HelpFormatter(argparse.HelpFormatter):
    """Every option with a default says it: ' (default: X)' is added to the help of an option
    that takes a value and has one by default (not None, not suppressed) unless its help
    already says '(default'; a flag is off unless given. An option whose default is worked out at run time (None) says so in its
    own help, in the same '(default: ...)' form."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if ("(default" in text or d is None or d is argparse.SUPPRESS or not action.option_strings
                or action.nargs == 0):  # flags (store_true, --quiet): off unless given
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with the house rules: its refusals on one line with exit USAGE, and
    HelpFormatter (subparsers made by add_subparsers are Parsers too)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(USAGE, "%s: %s (see %s -h)\n" % (self.prog, message, self.prog))


def add_json_option(parser, what="the result"):
    parser.add_argument("--json", action="store_true", help="print %s as JSON (docs/cli.md)" % what)


def add_progress_options(parser, off_tty):
    """--progress / --quiet, dest `progress` (None: by the rule of docs/cli.md)."""
    parser.add_argument("--progress", dest="progress", action="store_true", default=None,
                        help="show progress on stderr also when it is not a terminal (default: %s)"
                             % ("only on a terminal" if off_tty == "off" else
                                "a bar on a terminal, plain lines otherwise"))
    parser.add_argument("--quiet", dest="progress", action="store_false", help="no progress on stderr")


def print_json(doc, stream=None):
    """The one JSON document of a command's result on stdout: indented, UTF-8, one final newline."""
    stream = stream or sys.stdout
    stream.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    stream.flush()


def print_json_line(doc, stream=None):
    """One record of a stream (JSON lines): compact, one line, flushed at once."""
    stream = stream or sys.stdout
    stream.write(json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n")
    stream.flush()


def fail(command, message, stream=None):
    """The one line of an error on stderr: `mbnode COMMAND: message`."""
    print("mbnode %s: %s" % (command, message), file=stream or sys.stderr)


def guard(command, func, *args):
    """Run a subcommand; its exit code, with exceptions turned into the house codes and one
    line on stderr. ConfigError (mbnode.config) already names the file: printed as it is."""
    from mbnode.config import ConfigError
    from mbnode_host import paths

    try:
        return func(*args)
    except KeyboardInterrupt:
        return INTERRUPTED
    except ConfigError as e:  # "config: FILE: key = value: allowed ...", as the firmware says it
        print(e, file=sys.stderr)
        return USAGE
    except UsageError as e:
        fail(command, e)
        return USAGE
    except (ValueError, OSError, paths.MissingTool, RuntimeError) as e:
        fail(command, e)
        return ERROR


class Progress:
    """Progress on stderr (docs/cli.md, "Progress").

    mode True (--progress), False (--quiet) or None (by the rule). On a terminal: `bar` and
    `status` redraw one line in place (at most 10 times a second), `event` prints a line above
    it. Not a terminal: `event` prints a line when `off_tty` is "lines" (the command's steps:
    files copied, build steps) or --progress is given; `bar` and `status` print a plain line at
    most every `every` seconds with --progress only, so logs stay readable."""

    def __init__(self, mode=None, stream=None, off_tty="lines", every=2.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if hasattr(self.stream, "isatty") else False
        if mode is False:
            self.events = self.statuses = False
        elif self.tty:
            self.events = self.statuses = True
        else:
            self.events = mode is True or off_tty == "lines"
            self.statuses = mode is True
        self.enabled = self.events or self.statuses
        self.every = every
        self._last = None
        self._shown = False

    def _due(self, force):
        now = time.monotonic()
        if not force and self._last is not None and now - self._last < (0.1 if self.tty else self.every):
            return False
        self._last = now
        return True

    def _draw(self, text):
        if self.tty:
            width = max(20, shutil.get_terminal_size((80, 24)).columns - 1)
            self.stream.write("\r\x1b[K" + text[:width])
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text, force=False):
        """A status line where the total is not known."""
        if self.statuses and self._due(force):
            self._draw(text)

    def bar(self, done, total, text="", force=False):
        """Where the total is known: `[#####-----]  50%  text` on a terminal, `50%  text` lines
        otherwise (with --progress)."""
        if not self.statuses or not self._due(force or done >= total):
            return
        self._draw(bar_text(done, total, text, self.tty))

    def event(self, text):
        """One step, as a line of its own (above the bar on a terminal)."""
        if not self.events:
            return
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self):
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


def bar_text(done, total, text="", with_bar=True, width=24):
    """`[#########---------------]  37%  text` (with_bar False: `37%  text`)."""
    frac = 1.0 if total <= 0 else min(1.0, max(0.0, done / total))
    filled = int(round(frac * width))
    if not with_bar:
        return ("%d%%  %s" % (int(frac * 100), text)).rstrip()
    return ("[%s%s] %3d%%  %s" % ("#" * filled, "-" * (width - filled), int(frac * 100), text)).rstrip()


def kb(n):
    """Bytes for progress text: 45.1 KB, 1.20 MB."""
    return "%.1f KB" % (n / 1000) if n < 10 ** 6 else "%.2f MB" % (n / 10 ** 6)
