"""A hostile guest agent: the real one, except when hyperd asks it to exec `hostile MODE ARG...`.

It runs inside a real VM in place of the project's agent (tests/support/hostile_guest.py
puts it into the guest image beside /hc/agent and has /init start it), so it may use
only the standard library modules of the guest image. Every request is the real
agent's, but an exec whose command is `hostile MODE ...` makes it send, instead of
running a process, what a compromised guest would:

- `unknown`: events of unknown names, messages that are neither reply nor event,
  output on a stream never announced;
- `oddities N`: N events of an unknown name, as fast as the host takes them;
- `stray-replies`: replies to requests never made, and a second reply to this one;
- `ghost-exits ID...`: exit events for containers and execs that are not there, for
  each ID given (e.g. another pod's container) and for made-up ones;
- `host-paths PATH...`: streams, output, exits and an error naming each PATH;
- `flood BYTES`: BYTES of output for the exec, ignoring the host's acknowledgements;
- `oversized`, `malformed`: a frame longer than the protocol allows; a control frame
  that is not JSON;
- `midframe`: the start of a frame, then the agent dies (the VM powers off);
- `silent`: the exec starts, and from then on the agent answers nothing;
- `rehello silent|malformed`: the next host to connect (a restarted hyperd) gets no
  answer to its handshake, or a malformed one, and nothing more after it.

The harmless modes then end the "process" as the real agent would (stream
announcements, output `hostile MODE done`, end of file, exit code 0), so that
`hyperctl exec` ends and shows hyperd still serves the pod.
"""

from __future__ import annotations

import os
import sys
import time

from agent import __main__ as agent_main
from agent import protocol
from agent.outbox import Session, _Item
from agent.server import Server

QUEUED_FRAMES = 32  # flood frames waiting in the guest at once: its memory is small
real_answer = Server._answer
real_handshake = Server._handshake
silenced = False
next_hello: str | None = None  # how the next handshake is misanswered, if it is


class Misbehaviour:
    def __init__(self, server: Server, session, request_id: int, message: dict) -> None:
        self.outbox = server.outbox
        self.session = session
        self.request_id = request_id
        self.container = message.get("container")
        self.key = protocol.process_key(str(self.container), str(message.get("exec")))

    # -- what a correct agent sends, through its own outbox ------------------

    def started(self) -> int:
        """Answer the exec as the real agent does: streams announced, then the reply."""
        stdout = self.outbox.open_stream(self.key, "stdout")
        self.stdin = self.outbox.open_stream(self.key, "stdin")
        self.reply({"reply": self.request_id, "ok": True, "result": {}})
        return stdout

    def finish(self, stdout: int, text: str) -> None:
        self.outbox.data(stdout, text.encode() + b"\n")
        self.outbox.end_stream(stdout)
        self.outbox.forget_stream(self.stdin)
        self.outbox.event(
            {
                "event": "exit",
                "key": self.key,
                "container": self.container,
                "exec": self.key.split("/", 1)[1],
                "code": 0,
            }
        )

    def reply(self, message: dict) -> None:
        self.outbox.reply(self.session, message)

    # -- what it does not ----------------------------------------------------

    def raw(self, data: bytes) -> None:
        """Bytes on the wire as they are, in order with the rest, numbered or checked by
        nothing (the host still counts a frame among those it acknowledges)."""
        self.outbox._put(_Item(data, session=self.session.number))

    def wait_queue(self, most: int) -> None:
        with self.outbox._cond:
            self.outbox._cond.wait_for(lambda: len(self.outbox._items) < most)

    def flush(self) -> None:
        self.outbox.flush(30)


def unknown(bad: Misbehaviour, args: list[str]) -> None:
    stdout = bad.started()
    for message in (
        {"event": "reboot-the-host", "container": bad.container},
        {"event": 7},
        {"event": None},
        {"neither": "reply nor event"},
        {"ack": 5},
        {"id": 99, "op": "ping"},  # a request, from the guest
        {"event": "stream", "stream": 1 << 30, "key": "x", "fd": "stdout", "extra": [1] * 1000},
    ):
        bad.outbox.event(message)
    bad.outbox.data(1 << 29, b"output on a stream never announced")
    bad.outbox.end_stream(1 << 29)
    bad.finish(stdout, "hostile unknown done")


def oddities(bad: Misbehaviour, args: list[str]) -> None:
    stdout = bad.started()
    for number in range(int(args[0])):
        bad.outbox.event({"event": "odd", "n": number})
    bad.finish(stdout, "hostile oddities done")


def stray_replies(bad: Misbehaviour, args: list[str]) -> None:
    stdout = bad.started()
    for request_id in (bad.request_id + 1000, 2**40, 0, -1, 1):
        bad.reply({"reply": request_id, "ok": True, "result": {"containers": "not a dict"}})
        bad.reply({"reply": request_id, "ok": False, "error": "a failure nobody asked about"})
    bad.reply({"reply": bad.request_id, "ok": False, "error": "this exec already answered"})
    bad.finish(stdout, "hostile stray-replies done")


def ghost_exits(bad: Misbehaviour, args: list[str]) -> None:
    stdout = bad.started()
    ghosts = [*args, "0" * 64, "f" * 12, "", "..", "*", None, 7, [bad.container]]
    for ghost in ghosts:
        for exec_id in (None, "exec-ghost"):
            key = protocol.process_key(str(ghost), exec_id)
            bad.outbox.event(
                {"event": "exit", "key": key, "container": ghost, "exec": exec_id, "code": 0}
            )
    # The pod's own container, but with exit codes no process has.
    for code in ("0", 1.5, True, 2**40, [0]):
        bad.outbox.event(
            {
                "event": "exit",
                "key": bad.container,
                "container": bad.container,
                "exec": None,
                "code": code,
            }
        )
    bad.finish(stdout, "hostile ghost-exits done")


def host_paths(bad: Misbehaviour, args: list[str]) -> None:
    stdout = bad.started()
    own = str(bad.container)
    names = [*args]
    for path in args:
        names += [f"../../../../../../../..{path}", f"{own}/../../../../../../../..{path}"]
    names += [f"{own}/../../../../hc-pwned", f"{own}\x00/etc/hc-pwned", own + "/" + "a" * 5000]
    for name in names:
        for fd in ("stdout", "stderr"):
            stream = bad.outbox.open_stream(name, fd)
            bad.outbox.data(stream, b"where does this go? " + name.encode()[:200])
            bad.outbox.end_stream(stream)
        bad.outbox.event({"event": "exit", "key": name, "container": name, "exec": None, "code": 0})
        bad.outbox.event({"event": "exit", "key": name, "container": own, "exec": name, "code": 0})
        bad.outbox.event({"event": "log", "path": name, "data": "x"})
    bad.finish(stdout, "hostile host-paths done")


def flood(bad: Misbehaviour, args: list[str]) -> None:
    stdout = bad.started()
    bad.flush()  # the announcements are out before the unnumbered flood
    total = int(args[0])
    frame = protocol.encode_frame(stdout, b"z" * protocol.DATA_CHUNK)
    for _ in range(total // protocol.DATA_CHUNK):
        bad.wait_queue(QUEUED_FRAMES)  # the guest's memory, not the host's acknowledgements
        bad.raw(frame)
    bad.finish(stdout, "hostile flood done")


def oversized(bad: Misbehaviour, args: list[str]) -> None:
    bad.raw(protocol.HEADER.pack(protocol.CONTROL, 0xFFFFFF00) + b"{" * 4096)


def malformed(bad: Misbehaviour, args: list[str]) -> None:
    bad.raw(protocol.encode_frame(protocol.CONTROL, b"\x00{not json"))


def midframe(bad: Misbehaviour, args: list[str]) -> None:
    frame = protocol.encode_message({"reply": bad.request_id, "ok": True, "result": {}})
    bad.raw(frame[: protocol.HEADER.size + 3])
    bad.flush()
    time.sleep(1)  # the bytes cross the port before the VM goes
    os._exit(0)  # PID 1 powers the VM off


def silent(bad: Misbehaviour, args: list[str]) -> None:
    global silenced
    bad.started()  # the exec runs, as far as the host can tell; then nothing more
    bad.flush()
    silenced = True
    sys.stderr.write("hostile-agent: silent from now on\n")  # the test waits for it


def rehello(bad: Misbehaviour, args: list[str]) -> None:
    global next_hello
    next_hello = args[0]
    bad.finish(bad.started(), f"hostile rehello {args[0]} armed")


MODES = {
    "unknown": unknown,
    "oddities": oddities,
    "stray-replies": stray_replies,
    "ghost-exits": ghost_exits,
    "host-paths": host_paths,
    "flood": flood,
    "oversized": oversized,
    "malformed": malformed,
    "midframe": midframe,
    "silent": silent,
    "rehello": rehello,
}


def answer(self: Server, session, request_id: int, op: str, message: dict) -> None:
    if silenced:
        return
    argv = message.get("args") if op == "exec" else None
    if not (isinstance(argv, list) and len(argv) >= 2 and argv[0] == "hostile"):
        real_answer(self, session, request_id, op, message)
        return
    mode = MODES.get(argv[1])
    if mode is None:
        self.outbox.reply(
            session, {"reply": request_id, "ok": False, "error": f"no hostile mode {argv[1]}"}
        )
        return
    sys.stderr.write(f"hostile-agent: {argv[1]}\n")
    mode(Misbehaviour(self, session, request_id, message), argv[2:])


def handshake(self: Server, connection, payload: bytes) -> Session:
    global silenced
    if next_hello is None:
        return real_handshake(self, connection, payload)
    silenced = True  # whatever this host asks next goes unanswered
    sys.stderr.write(f"hostile-agent: handshake {next_hello}\n")
    if next_hello == "malformed":
        hello = protocol.decode_message(payload)
        result = {"nonce": hello.get("nonce"), "version": protocol.VERSION, "seq": -1}
        reply = {"reply": hello.get("id"), "ok": True, "result": {**result, "streams": "x"}}
        connection.write(protocol.SYNC + protocol.encode_message(reply))
    return Session(-1, connection.write)  # the outbox never writes to it


Server._answer = answer  # type: ignore[method-assign]
Server._handshake = handshake  # type: ignore[method-assign]

if __name__ == "__main__":
    agent_main.main(sys.argv[1:])
