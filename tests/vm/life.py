#!/usr/bin/python3
"""Reader life through pcscd with pyscard: several clients on several slots
and readers, a reader unplugged in the middle of an APDU, readers unplugged
and plugged again. A client of the test bed for smartcrd-vreader (the guest
scenario tests/vm/scenarios/life.sh); the applet and the control socket are
described in sim/README.md.

Usage:
  life.py wait --count N [--match S] [--timeout SEC]
      until N readers whose name contains S hold a card
  life.py clients --clients N --seconds SEC [--match S]
      N client processes, spread over the readers (slots) matching S, each
      with its own PC/SC context, send the applet's 80 34 (lengths 1..256,
      every byte checked) for SEC seconds
  life.py unplug-apdu --socket SOCK --match S
      an APDU that takes about 5 s (80 38 00 30: the reader sends 48 time
      extensions first), the reader unplugged 1 s into it: the APDU must fail,
      not hang and not succeed; then the reader must leave pcscd's list, and
      come back with a card that answers after the replug
  life.py replug --socket SOCK --match S --cycles N
      N times: unplug, the reader leaves the list, replug, it comes back with
      a card, one APDU answers
  life.py independent --sockets SOCK,SOCK,... --matches S,S,...
      readers side by side: a card removed from one, or one unplugged, leaves
      the others answering

One line per check, "PASS life-NAME: detail" or "FAIL life-NAME: why"; the
details carry figures (times), which never decide a verdict, except that
nothing may hang (every wait is bounded). Exit 0 only when nothing failed.
"""
import argparse
import multiprocessing
import socket
import statistics
import sys
import time

from smartcard.scard import (SCARD_LEAVE_CARD, SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1,
                             SCARD_S_SUCCESS, SCARD_SCOPE_SYSTEM, SCARD_SHARE_SHARED,
                             SCARD_STATE_PRESENT, SCARD_STATE_UNAWARE, SCardConnect,
                             SCardDisconnect, SCardEstablishContext, SCardGetErrorMessage,
                             SCardGetStatusChange, SCardListReaders, SCardReleaseContext,
                             SCardTransmit)

SELECT = [0x00, 0xA4, 0x04, 0x00, 0x06, 0xA0, 0x00, 0x00, 0x00, 0x18, 0xFF]
# 80 38 00 xx: the card takes time; the reader sends xx time extensions first,
# each --time-unit-ms long (100 ms in the scenario): 48 make about 5 s
SLOW_APDU = [0x80, 0x38, 0x00, 0x30]
POLL_S = 0.05

failures = 0


def say(msg):
    print("life: " + msg, flush=True)


def verdict(name, ok, detail):
    global failures
    print("%s life-%s: %s" % ("PASS" if ok else "FAIL", name, detail), flush=True)
    if not ok:
        failures += 1


def err(rc):
    return "%s (0x%08X)" % (SCardGetErrorMessage(rc).strip(), rc & 0xFFFFFFFF)


def ctl(sock_path, command):
    """One line to smartcrd-vreader's control socket; its answer line."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall((command + "\n").encode())
        return s.makefile().readline().strip()


def context():
    rc, ctx = SCardEstablishContext(SCARD_SCOPE_SYSTEM)
    if rc != SCARD_S_SUCCESS:
        raise RuntimeError("SCardEstablishContext: " + err(rc))
    return ctx


# SCardListReaders while pcscd adds or removes a reader can hand pyscard a
# name that is not text yet (pcsc-lite's client copies the reader states as
# they change): pyscard raises SystemError from a UnicodeDecodeError. The list
# is asked again; how often it happened is said at the end.
torn_lists = 0


def readers(ctx, match):
    global torn_lists
    for _ in range(20):
        try:
            rc, names = SCardListReaders(ctx, [])
        except SystemError:
            torn_lists += 1
            time.sleep(POLL_S)
            continue
        if rc != SCARD_S_SUCCESS:
            return []
        return sorted(n for n in names if match in n)
    raise RuntimeError("SCardListReaders: 20 torn reader lists in a row")


def has_card(ctx, reader):
    rc, states = SCardGetStatusChange(ctx, 0, [(reader, SCARD_STATE_UNAWARE)])
    return rc == SCARD_S_SUCCESS and bool(states[0][1] & SCARD_STATE_PRESENT)


def wait_until(predicate, timeout_s):
    """Polls predicate every POLL_S; the seconds it took, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if predicate():
            return time.monotonic() - start
        time.sleep(POLL_S)
    return None


def wait_cards(ctx, match, count, timeout_s):
    return wait_until(lambda: len([r for r in readers(ctx, match) if has_card(ctx, r)]) >= count,
                      timeout_s)


def expected_data(n):
    return [i & 0xFF for i in range(n)]


def read_apdu(n):
    """80 34 P1 P2 Le: n bytes 00 01 .. back (n = 1..256)."""
    return [0x80, 0x34, n >> 8, n & 0xFF, n & 0xFF]


class Card:
    """A connection with the applet selected; errors raise RuntimeError."""

    def __init__(self, ctx, reader):
        rc, self.handle, self.proto = SCardConnect(ctx, reader, SCARD_SHARE_SHARED,
                                                   SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
        if rc != SCARD_S_SUCCESS:
            raise RuntimeError("SCardConnect %s: %s" % (reader, err(rc)))
        self.transmit(SELECT, [])

    def transmit(self, apdu, want):
        rc, resp = SCardTransmit(self.handle, self.proto, apdu)
        if rc != SCARD_S_SUCCESS:
            raise RuntimeError("SCardTransmit %s: %s" % (bytes(apdu[:4]).hex(), err(rc)))
        if list(resp) != want + [0x90, 0x00]:
            raise RuntimeError("APDU %s: answer %s (%d bytes), not the %d bytes expected"
                               % (bytes(apdu[:4]).hex(), bytes(resp[-2:]).hex(), len(resp),
                                  len(want) + 2))

    def read(self, n):
        self.transmit(read_apdu(n), expected_data(n))

    def close(self):
        SCardDisconnect(self.handle, SCARD_LEAVE_CARD)


def one_apdu(ctx, reader):
    """Connect, select, read 16 bytes, disconnect: None, or what went wrong."""
    try:
        card = Card(ctx, reader)
        card.read(16)
        card.close()
        return None
    except RuntimeError as e:
        return str(e)


# --- clients ---------------------------------------------------------------------

def client_process(reader, seconds, index, out):
    """Reads every length from 1 to 256 again and again: (APDUs, error or None)."""
    n = 0
    try:
        ctx = context()
        card = Card(ctx, reader)
        end = time.monotonic() + seconds
        length = 1 + (index * 37) % 256   # the clients do not move in step
        while time.monotonic() < end:
            card.read(length)
            n += 1
            length = length % 256 + 1
        card.close()
        SCardReleaseContext(ctx)
        out.put((index, reader, n, None))
    except RuntimeError as e:
        out.put((index, reader, n, str(e)))


def cmd_clients(args):
    ctx = context()
    names = readers(ctx, args.match)
    if not names:
        verdict("clients", False, "no reader matching '%s'" % args.match)
        return
    out = multiprocessing.Queue()
    procs = []
    for i in range(args.clients):
        p = multiprocessing.Process(target=client_process,
                                    args=(names[i % len(names)], args.seconds, i, out))
        p.start()
        procs.append(p)
    results = []
    for _ in procs:
        try:
            results.append(out.get(timeout=args.seconds + 60))
        except Exception:   # queue.Empty: a client hung
            break
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
    per_reader = {}
    errors = []
    for index, reader, n, error in sorted(results):
        per_reader[reader] = per_reader.get(reader, 0) + n
        say("client %d on %s: %d APDUs%s" % (index, reader, n, ", " + error if error else ""))
        if error:
            errors.append("client %d: %s" % (index, error))
        elif n == 0:
            errors.append("client %d sent nothing" % index)
    if len(results) < len(procs):
        errors.append("%d of %d clients did not report within %d s"
                      % (len(procs) - len(results), len(procs), args.seconds + 60))
    total = sum(per_reader.values())
    detail = "%d clients on %d readers/slots for %d s: %d APDUs (%s), %.0f APDUs/s" % (
        args.clients, len(names), args.seconds, total,
        ", ".join("%d" % per_reader[r] for r in sorted(per_reader)), total / args.seconds)
    verdict("clients", not errors, "; ".join(errors[:3]) if errors else detail)


# --- unplug during an APDU ------------------------------------------------------

def slow_apdu(reader, out):
    try:
        ctx = context()
        card = Card(ctx, reader)
    except RuntimeError as e:
        out.put(("setup", str(e), time.monotonic()))
        return
    out.put(("started", "", time.monotonic()))
    rc, resp = SCardTransmit(card.handle, card.proto, SLOW_APDU)
    out.put(("done", err(rc) if rc != SCARD_S_SUCCESS else "answer " + bytes(resp).hex(),
             time.monotonic()))


def cmd_unplug_apdu(args):
    ctx = context()
    names = readers(ctx, args.match)
    if len(names) != 1:
        verdict("unplug-apdu", False, "%d readers match '%s'" % (len(names), args.match))
        return
    out = multiprocessing.Queue()
    p = multiprocessing.Process(target=slow_apdu, args=(names[0], out))
    p.start()
    what, detail, _ = out.get(timeout=30)
    if what != "started":
        verdict("unplug-apdu", False, detail)
        p.join()
        return
    time.sleep(1.0)
    unplugged_at = time.monotonic()
    answer = ctl(args.socket, "unplug")
    try:
        what, detail, done_at = out.get(timeout=30)
    except Exception:
        what, detail, done_at = "hang", "no return 30 s after the unplug", None
    p.join(timeout=5)
    if p.is_alive():
        p.kill()
    gone = wait_until(lambda: not readers(ctx, args.match), 30)
    ok = answer == "ok" and what == "done" and not detail.startswith("answer") and gone is not None
    latency = "%.0f ms" % ((done_at - unplugged_at) * 1000) if done_at else "-"
    verdict("unplug-apdu", ok,
            "control '%s'; the APDU returned %s after the unplug: %s; reader left the list "
            "after %s" % (answer, latency, detail,
                          "%.1f s" % gone if gone is not None else "more than 30 s"))
    answer = ctl(args.socket, "replug")
    back = wait_cards(ctx, args.match, 1, 30)
    problem = one_apdu(ctx, readers(ctx, args.match)[0]) if back is not None else "not back"
    verdict("unplug-apdu-replug", answer == "ok" and problem is None,
            "replug '%s', reader back with a card after %s, APDU %s"
            % (answer, "%.1f s" % back if back is not None else "more than 30 s",
               problem or "90 00"))


# --- unplug and replug, many times -------------------------------------------

def cmd_replug(args):
    ctx = context()
    gone_s, back_s, problems = [], [], []
    for cycle in range(1, args.cycles + 1):
        a = ctl(args.socket, "unplug")
        gone = wait_until(lambda: not readers(ctx, args.match), 20)
        b = ctl(args.socket, "replug")
        back = wait_cards(ctx, args.match, 1, 30)
        problem = None
        if a != "ok" or b != "ok":
            problem = "control answered '%s', '%s'" % (a, b)
        elif gone is None:
            problem = "reader still listed 20 s after the unplug"
        elif back is None:
            problem = "no reader with a card 30 s after the replug"
        else:
            problem = one_apdu(ctx, readers(ctx, args.match)[0])
        if problem:
            problems.append("cycle %d: %s" % (cycle, problem))
            say("cycle %d: %s" % (cycle, problem))
            if back is None:
                break
        else:
            gone_s.append(gone)
            back_s.append(back)
        if cycle % 10 == 0:
            say("%d cycles done" % cycle)
    if gone_s:
        figures = ("reader gone after %.2f s, back with a card after %.2f s (median; max %.2f/%.2f)"
                   % (statistics.median(gone_s), statistics.median(back_s), max(gone_s),
                      max(back_s)))
    else:
        figures = "no cycle completed"
    verdict("replug", not problems,
            "%d of %d cycles, each with an APDU; %s%s" % (
                len(gone_s), args.cycles, figures,
                "; " + "; ".join(problems[:3]) if problems else ""))


# --- readers side by side --------------------------------------------------------

def others_answer(ctx, matches, skip):
    """None when every reader but matches[skip] answers an APDU, else why not."""
    for i, m in enumerate(matches):
        if i == skip:
            continue
        names = readers(ctx, m)
        if len(names) != 1:
            return "%d readers match '%s'" % (len(names), m)
        problem = one_apdu(ctx, names[0])
        if problem:
            return "%s: %s" % (names[0], problem)
    return None


def cmd_independent(args):
    ctx = context()
    sockets = args.sockets.split(",")
    matches = args.matches.split(",")
    problems = []
    for i, (sock, m) in enumerate(zip(sockets, matches)):
        # a card removed from one reader, then the reader unplugged
        for what, out, back_in, left, gone_s, back_s in (
                ("card out of", "remove 0", "insert 0",
                 lambda: any(not has_card(ctx, r) for r in readers(ctx, m)), 10, 10),
                ("unplugged", "unplug", "replug", lambda: not readers(ctx, m), 20, 30)):
            a = ctl(sock, out)
            gone = wait_until(left, gone_s)
            problem = others_answer(ctx, matches, i)
            b = ctl(sock, back_in)
            back = wait_cards(ctx, m, 1, back_s)
            if a != "ok" or b != "ok" or gone is None or back is None or problem:
                problems.append("reader %d %s: control '%s'/'%s', %s, %s%s" % (
                    i + 1, what, a, b, "left" if gone is not None else "never left",
                    "back" if back is not None else "not back",
                    ", " + problem if problem else ""))
    problem = others_answer(ctx, matches, -1)
    if problem:
        problems.append("at the end: " + problem)
    verdict("independent", not problems,
            "; ".join(problems[:3]) if problems else
            "%d readers: a card removed from each in turn, then each unplugged and replugged; "
            "the others answered every time" % len(matches))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--count", type=int, default=1)
    w.add_argument("--match", default="")
    w.add_argument("--timeout", type=float, default=60)
    c = sub.add_parser("clients")
    c.add_argument("--clients", type=int, default=4)
    c.add_argument("--seconds", type=int, default=60)
    c.add_argument("--match", default="")
    u = sub.add_parser("unplug-apdu")
    u.add_argument("--socket", required=True)
    u.add_argument("--match", default="")
    r = sub.add_parser("replug")
    r.add_argument("--socket", required=True)
    r.add_argument("--match", default="")
    r.add_argument("--cycles", type=int, default=100)
    i = sub.add_parser("independent")
    i.add_argument("--sockets", required=True)
    i.add_argument("--matches", required=True)
    args = ap.parse_args()
    if args.cmd == "wait":
        ctx = context()
        took = wait_cards(ctx, args.match, args.count, args.timeout)
        verdict("wait", took is not None,
                "%d readers with a card after %.1f s: %s" % (
                    args.count, took, ", ".join(readers(ctx, args.match)))
                if took is not None else "fewer than %d readers with a card after %.0f s: %s"
                % (args.count, args.timeout, ", ".join(readers(ctx, args.match)) or "none"))
    elif args.cmd == "clients":
        cmd_clients(args)
    elif args.cmd == "unplug-apdu":
        cmd_unplug_apdu(args)
    elif args.cmd == "replug":
        cmd_replug(args)
    else:
        cmd_independent(args)
    if torn_lists:
        say("SCardListReaders gave a torn reader list %d times (asked again)" % torn_lists)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
