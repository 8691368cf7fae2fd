"""sotalab's runtime evidence for in_process evaluation (PEP 578 audit hook).

The lab puts this directory first on PYTHONPATH of an in_process evaluation run, so
Python imports it while it starts, before the script's own directory is on sys.path
and before any trial code runs; a file of the same name in the trial's tree is never
reached. It records what the code did, one JSON object per line, into the pipe named
by $SOTALAB_EVENTS, which the run's supervisor drains outside the sandbox: the trial
can add lines but never take back one already written. The audit turns these records
into findings (tools/audit); this file only observes and never changes behaviour.

Record kinds (``ev``), each with ``by`` = "file:line" of the innermost frame in the
evaluated tree ($SOTALAB_HOOK_ROOT) that led to it, or null when none did; ``open``
records also carry ``chain``, every such location on the way, innermost first (a
trial's line that called a protected loader shows there):
- ``start``/``exit``: the process began / ended normally (a missing exit after a
  start means the process was killed or left through os._exit).
- ``open``: a file under a watched root ($SOTALAB_HOOK_ROOT, $SOTALAB_HELD_OUT) was
  opened: ``path`` (relative to its root, with ``root``), ``write`` (bool).
- ``module``: module code from a file under the root ran: ``path``, ``name``, ``sha256``
  of the file's bytes at that moment, ``compiled`` (the code equals a fresh compile of
  that source).
- ``exec``/``compile``: code not from a file under the root was run or compiled
  (exec/eval of a string, code rebuilt from data): ``filename``.
- ``marshal``, ``pickle`` (``what``: the class unpickled), ``ctypes`` (``what``),
  ``spawn`` (``argv``), ``audit_hook`` (the code installed its own hook).
- ``builtins``: names in builtins that were replaced or added (checked at exit and every
  few hundred events).
- ``metric_print``: a line printed to stdout/stderr that matches a metric regex
  ($SOTALAB_METRIC_REGEX, JSON list): ``text``.
- ``overflow``: the record budget ran out; later records were dropped.
"""

import builtins
import hashlib
import json
import marshal
import os
import re
import sys
import threading

_EVENTS = os.environ.get("SOTALAB_EVENTS")
_ROOT = os.path.realpath(os.environ.get("SOTALAB_HOOK_ROOT", "") or ".")
_HELD = os.environ.get("SOTALAB_HELD_OUT")
_ROOTS = [r for r in (_ROOT, os.path.realpath(_HELD) if _HELD else None) if r]
_MAX_RECORDS = 20000
_LINE_MAX = 3800  # below PIPE_BUF (4096): one write per record stays whole when processes share the pipe
_local = threading.local()
_state = {"count": 0, "fd": None, "seen": set()}
try:
    _METRIC_RES = [re.compile(r, re.MULTILINE) for r in json.loads(os.environ.get("SOTALAB_METRIC_REGEX", "[]"))]
except (ValueError, re.error):
    _METRIC_RES = []
_BUILTINS = dict(vars(builtins))
_HERE = os.path.realpath(__file__)


def _open_channel():
    if not _EVENTS:
        return None
    try:
        return os.open(_EVENTS, os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return None


def _under(path):
    for root in _ROOTS:
        if path == root or path.startswith(root + os.sep):
            return root
    return None


def _chain(limit=8):
    """The locations in the evaluated tree on the way to the event, innermost first."""
    found = []
    frame = sys._getframe(2)
    while frame is not None and len(found) < limit:
        filename = frame.f_code.co_filename
        if filename and not filename.startswith("<"):
            real = os.path.realpath(filename)
            if real != _HERE and _under(real) == _ROOT:
                found.append("%s:%d" % (os.path.relpath(real, _ROOT), frame.f_lineno))
        frame = frame.f_back
    return found


def _by():
    chain = _chain(1)
    return chain[0] if chain else None


def _direct():
    """The file of the Python frame that raised the event (the caller of open, exec...)."""
    frame = sys._getframe(3)  # _direct <- _handle <- _hook <- the code that raised the event
    return frame.f_code.co_filename if frame is not None else ""


def _from_root(filename):
    return bool(filename) and not filename.startswith("<") and _under(os.path.realpath(filename)) == _ROOT


def _emit(record, dedup=None):
    fd = _state["fd"]
    if fd is None:
        return
    if dedup is not None:
        if dedup in _state["seen"]:
            return
        if len(_state["seen"]) < 50000:
            _state["seen"].add(dedup)
    _state["count"] += 1
    if _state["count"] > _MAX_RECORDS:
        if _state["count"] == _MAX_RECORDS + 1:
            record = {"ev": "overflow"}
        else:
            return
    record["pid"] = os.getpid()
    line = json.dumps(record, default=str)
    if len(line) > _LINE_MAX:
        record = {k: (v[:200] if isinstance(v, str) else v) for k, v in record.items() if k != "argv"}
        record["truncated"] = True
        line = json.dumps(record, default=str)[:_LINE_MAX]
    try:
        os.write(fd, (line + "\n").encode("utf-8", "replace"))
    except OSError:
        _state["fd"] = None


def _check_builtins():
    now = vars(builtins)
    changed = sorted(k for k, v in now.items() if k not in _BUILTINS or _BUILTINS[k] is not v)
    if changed:
        _emit({"ev": "builtins", "names": changed[:50], "by": None}, dedup=("builtins", tuple(changed[:50])))


def _module_record(code):
    path = os.path.realpath(code.co_filename)
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except OSError:
        return {"ev": "module", "path": os.path.relpath(path, _ROOT), "sha256": None, "compiled": False}
    try:
        fresh = compile(source, code.co_filename, "exec", dont_inherit=True, optimize=sys.flags.optimize)
        compiled = marshal.dumps(fresh.co_code) == marshal.dumps(code.co_code) and fresh.co_consts == code.co_consts
    except Exception:
        compiled = False
    return {"ev": "module", "path": os.path.relpath(path, _ROOT), "sha256": hashlib.sha256(source).hexdigest(),
            "compiled": compiled}


def _hook(event, args):
    if getattr(_local, "busy", False):
        return
    _local.busy = True
    try:
        _handle(event, args)
        if _state["count"] and _state["count"] % 300 == 0:
            _check_builtins()
    except Exception:
        pass  # evidence must never break the run it watches
    finally:
        _local.busy = False


def _handle(event, args):
    if event == "open":
        path, mode, flags = args
        if not isinstance(path, (str, bytes)):
            return
        path = os.fsdecode(path)
        real = os.path.realpath(path)
        root = _under(real)
        if root is None:
            return
        write = bool(isinstance(mode, str) and any(c in mode for c in "wax+")) or bool(flags & (os.O_WRONLY | os.O_RDWR))
        if not write and _direct().startswith("<frozen importlib"):
            return  # the import system reading source or bytecode: the "module" record covers it
        chain = _chain()
        by = chain[0] if chain else None
        rel = os.path.relpath(real, root)
        _emit({"ev": "open", "root": "held_out" if root != _ROOT else "tree", "path": rel, "write": write, "by": by,
               "chain": chain}, dedup=("open", root, rel, write, tuple(chain)))
    elif event == "exec":
        code = args[0]
        filename = getattr(code, "co_filename", "") or ""
        real = os.path.realpath(filename) if filename and not filename.startswith("<") else ""
        if real and _under(real) == _ROOT and os.path.isfile(real) and code.co_name == "<module>":
            record = _module_record(code)
            record["by"] = _by()
            _emit(record, dedup=("module", record["path"], record["sha256"], record["compiled"]))
        elif _from_root(_direct()):  # code the evaluated tree itself exec'd or eval'd
            by = _by()
            _emit({"ev": "exec", "filename": filename[:200], "by": by}, dedup=("exec", filename[:200], by))
    elif event == "compile":
        filename = os.fsdecode(args[1]) if len(args) > 1 and isinstance(args[1], (str, bytes)) else "<?>"
        if _from_root(_direct()):  # importlib compiling a module is covered by its "module" record
            by = _by()
            _emit({"ev": "compile", "filename": filename[:200], "by": by}, dedup=("compile", filename[:200], by))
    elif event in ("marshal.loads", "marshal.load"):
        if _from_root(_direct()):
            by = _by()
            _emit({"ev": "marshal", "by": by}, dedup=("marshal", by))
    elif event == "pickle.find_class":
        by = _by()
        _emit({"ev": "pickle", "what": "%s.%s" % (args[0], args[1]), "by": by}, dedup=("pickle", args[0], args[1], by))
    elif event.startswith("ctypes.") and _from_root(_direct()):
        by = _by()
        what = str(args[0])[:200] if args else event
        _emit({"ev": "ctypes", "what": "%s %s" % (event, what), "by": by}, dedup=("ctypes", event, what, by))
    elif event in ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty"):
        argv = args[1] if event == "subprocess.Popen" and len(args) > 1 else (args[0] if args else None)
        if isinstance(argv, (list, tuple)):
            argv = [os.fsdecode(a) if isinstance(a, (str, bytes)) else str(a) for a in argv][:20]
        _emit({"ev": "spawn", "call": event, "argv": argv, "by": _by()})
    elif event == "sys.addaudithook":
        _emit({"ev": "audit_hook", "by": _by()})


class _Watched:
    """stdout/stderr that note who printed a metric line; otherwise the stream itself."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        if _METRIC_RES and isinstance(text, str) and not getattr(_local, "busy", False):
            for pattern in _METRIC_RES:
                if pattern.search(text):
                    _local.busy = True
                    try:
                        _emit({"ev": "metric_print", "text": text.strip()[:300], "by": _by()})
                    finally:
                        _local.busy = False
                    break
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _at_exit():
    _check_builtins()
    _emit({"ev": "exit"})


def _install():
    _state["fd"] = _open_channel()
    if _state["fd"] is None:
        return
    import atexit

    _emit({"ev": "start", "argv": list(sys.argv)[:20], "executable": sys.executable})
    sys.addaudithook(_hook)
    atexit.register(_at_exit)
    if _METRIC_RES:
        sys.stdout = _Watched(sys.stdout)
        sys.stderr = _Watched(sys.stderr)


_install()
