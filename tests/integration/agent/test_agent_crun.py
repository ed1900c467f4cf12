"""The guest agent running real containers with real crun, driven by the host client."""

from __future__ import annotations

import base64
import os
import socket

import pytest
from agent_harness import MAC, container_config
from hypercontainer.agent.client import AgentClient
from hypercontainer.errors import AgentError

pytestmark = pytest.mark.root


def run(agent, cid: str, args: list[str], **overrides) -> dict:
    agent.client.create_container(container_config(cid, args, **overrides))
    agent.client.start_container(cid)
    return agent.wait_exit(cid)


def test_container_output_exit_code_and_pod_files(agent):
    pod = agent.client.start_pod(
        "mypod",
        dns=["10.0.2.3"],
        dns_search=["example.com"],
        dns_options=["ndots:2"],
        interface={"mac": MAC, "address": "10.0.2.15/24", "gateway": "10.0.2.2"},
    )
    assert pod == {"hostname": "mypod", "address": "10.0.2.15"}
    script = (
        "echo out; echo err >&2; hostname; cat /etc/motd /etc/resolv.conf; "
        "grep mypod /etc/hosts; ip -4 addr show hc0; exit 3"
    )
    event = run(agent, "c1", ["sh", "-c", script])
    assert event == {"event": "exit", "key": "c1", "container": "c1", "exec": None, "code": 3}
    out = agent.stdout("c1").decode()
    lines = out.splitlines()
    assert lines[:3] == ["out", "mypod", "from top"]  # the top layer wins over base
    assert "nameserver 10.0.2.3\nsearch example.com\noptions ndots:2\n" in out
    assert "10.0.2.15\tmypod" in out
    assert "inet 10.0.2.15/24" in out  # the pod's network namespace is shared
    assert agent.stderr("c1") == b"err\n"
    assert ("c1", "stdout") in agent.eof and ("c1", "stderr") in agent.eof
    state = agent.client.state()["containers"]["c1"]
    assert (state["status"], state["code"]) == ("exited", 3)


def test_container_hostname_env_cwd_and_readonly_root(agent):
    config = {
        "process": {"env": ["PATH=/bin", "FOO=bar"], "cwd": "/work/dir"},
        "hostname": "web",
        "readonly_rootfs": True,
    }
    run(agent, "c1", ["sh", "-c", "hostname; echo $FOO $HOME; pwd; touch /x || echo ro"], **config)
    assert agent.stdout("c1").decode().split("\n") == ["web", "bar /root", "/work/dir", "ro", ""]


def test_opaque_directories_hide_lower_layers(agent):
    run(agent, "plain", ["ls", "/opq"])
    assert agent.stdout("plain") == b"new\nold\n"
    run(agent, "masked", ["ls", "/opq"], opaque={"top": ["/opq"]})
    assert agent.stdout("masked") == b"new\n"


def test_start_failure_is_a_one_line_error(agent):
    agent.client.create_container(container_config("c1", ["nope"]))
    with pytest.raises(AgentError, match=r"^crun: executable file `nope` not found"):
        agent.client.start_container("c1")
    assert agent.client.state()["containers"]["c1"]["status"] == "created"
    agent.client.remove_container("c1")
    assert agent.client.state()["containers"] == {}


def test_bad_requests_change_nothing(agent):
    client = agent.client
    with pytest.raises(AgentError, match="invalid layer directory '../etc'"):
        client.create_container(container_config("c1", ["true"], layers=["../etc"]))
    with pytest.raises(AgentError, match="unable to find user ghost: no matching entries"):
        client.create_container(container_config("c1", ["true"], process={"user": "ghost"}))
    with pytest.raises(AgentError, match="layer missing not found"):
        client.create_container(container_config("c1", ["true"], layers=["missing"]))
    assert client.state()["containers"] == {}
    client.create_container(container_config("c1", ["true"]))
    with pytest.raises(AgentError, match="container c1 already exists"):
        client.create_container(container_config("c1", ["true"]))
    with pytest.raises(AgentError, match="no container c2"):
        client.start_container("c2")
    with pytest.raises(AgentError, match="unknown request 'frobnicate'"):
        client._call("frobnicate", 10)
    client.ping()  # the agent survived all of it


def test_exec_user_env_and_exit_code(agent):
    agent.client.create_container(
        container_config("c1", ["sleep", "1000"], process={"env": ["PATH=/bin", "A=1"]})
    )
    agent.client.start_container("c1")
    key = agent.client.exec(
        "c1", "e1", ["sh", "-c", "echo $A $B; id; pwd; exit 7"], env=["B=2"], cwd="/etc", user="app"
    )
    assert key == "c1/e1"
    assert agent.wait_exit("c1/e1")["code"] == 7
    out = agent.stdout("c1/e1").decode().splitlines()
    assert out[0] == "1 2"
    assert out[1].startswith("uid=1000(app) gid=1000(app) groups=") and "50(staff)" in out[1]
    assert out[2] == "/etc"
    with pytest.raises(AgentError, match="executable file `nope` not found"):
        agent.client.exec("c1", "e2", ["nope"])
    with pytest.raises(AgentError, match="exec e1 already exists"):
        agent.client.exec("c1", "e1", ["true"])
    execs = agent.client.state()["containers"]["c1"]["execs"]
    assert execs["e1"]["status"] == "exited" and execs["e1"]["code"] == 7
    agent.client.signal("c1", 9)
    assert agent.wait_exit("c1")["code"] == 137  # 128 + SIGKILL


def test_stdin_pipe(agent):
    agent.client.create_container(
        container_config("c1", ["sh", "-c", "cat; echo end"], process={"stdin": True})
    )
    agent.client.start_container("c1")
    agent.client.write_stdin("c1", b"hello ")
    agent.client.write_stdin("c1", b"world\n" * 5000)
    agent.client.close_stdin("c1")
    assert agent.wait_exit("c1")["code"] == 0
    assert agent.stdout("c1") == b"hello " + b"world\n" * 5000 + b"end\n"


def test_terminal_exec_with_resize(agent):
    # Ids as long as hyperd's: the console socket's path must still fit a unix socket's.
    cid, exec_id = "c" * 64, "exec-" + "e" * 16
    agent.client.create_container(container_config(cid, ["sleep", "1000"]))
    agent.client.start_container(cid)
    key = agent.client.exec(
        cid, exec_id, ["sh", "-c", "read x; tty; stty size; echo got $x"], terminal=True, stdin=True
    )
    agent.client.resize(key, 33, 111)
    agent.client.write_stdin(key, b"hello\n")
    assert agent.wait_exit(key)["code"] == 0
    out = agent.stdout(key).decode()
    assert "/dev/pts/" in out and "33 111" in out and "got hello" in out
    assert agent.stderr(key) == b""  # a terminal has one stream


def test_container_with_a_terminal(agent):
    run(agent, "c1", ["sh", "-c", "tty; echo $TERM"], process={"terminal": True})
    assert agent.stdout("c1").split() == [b"/dev/pts/0", b"xterm"]


def test_files_users_and_no_escape(agent, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    top = agent.shares / "hc_layers" / "top"
    (top / "escape").symlink_to("../../../../../../../../.." + str(outside))
    files = [
        {
            "path": "/etc/app.conf",
            "content_b64": base64.b64encode(b"x=1\n").decode(),
            "mode": 0o600,
            "user": "app",
            "group": "staff",
        },
        {"path": "/escape/pwned", "content_b64": base64.b64encode(b"no").decode()},
    ]
    run(
        agent,
        "c1",
        ["sh", "-c", "stat -c '%u %g %a' /etc/app.conf; cat /etc/app.conf"],
        files=files,
    )
    assert agent.stdout("c1") == b"1000 50 600\nx=1\n"
    assert list(outside.iterdir()) == []  # the link was followed inside the rootfs only
    assert agent.client.read_file("c1", "/escape/pwned") == b"no"
    assert agent.client.read_file("c1", str(outside) + "/pwned") == b"no"


def test_write_and_read_files_of_a_running_container(agent):
    agent.client.create_container(container_config("c1", ["sleep", "1000"]))
    agent.client.start_container("c1")
    big = os.urandom(700_000)  # several requests each way
    agent.client.write_file("c1", "/data/blob", big, mode=0o640)
    assert agent.client.read_file("c1", "/data/blob") == big
    key = agent.client.exec("c1", "e", ["stat", "-c", "%s %a", "/data/blob"])
    agent.wait_exit(key)
    assert agent.stdout(key) == b"700000 640\n"
    with pytest.raises(AgentError, match="^/nothing/here: No such file or directory$"):
        agent.client.read_file("c1", "/nothing/here")
    agent.wait_exit(agent.client.exec("c1", "f", ["mkfifo", "/fifo"]))
    with pytest.raises(AgentError, match="^/fifo: not a regular file$"):
        agent.client.read_file("c1", "/fifo")  # would block forever if opened as a file
    with pytest.raises(AgentError, match="must be absolute"):
        agent.client.write_file("c1", "relative", b"")


def test_volumes_share_and_empty(agent):
    volume = agent.shares / "hc_vol_1"
    (volume / "in.txt").write_text("from host\n")
    mounts = [
        {"type": "share", "tag": "hc_vol_1", "destination": "/data", "readonly": False},
        {"type": "empty", "name": "cache", "destination": "/cache", "readonly": False},
        {"type": "share", "tag": "hc_vol_1", "destination": "/ro", "readonly": True},
    ]
    run(
        agent,
        "w",
        [
            "sh",
            "-c",
            "cat /data/in.txt; echo hi > /data/out.txt; "
            "echo shared > /cache/x; touch /ro/y || echo ro",
        ],
        mounts=mounts,
    )
    assert agent.stdout("w") == b"from host\nro\n"
    assert (volume / "out.txt").read_text() == "hi\n"
    run(agent, "r", ["cat", "/cache/x"], mounts=mounts[1:2])
    assert agent.stdout("r") == b"shared\n"
    assert agent.client.read_file("r", "/cache/x") == b"shared\n"  # through the volume


def test_remove_kills_a_running_container(agent):
    agent.client.create_container(container_config("c1", ["sleep", "1000"]))
    agent.client.start_container("c1")
    agent.client.remove_container("c1")
    assert agent.wait_exit("c1")["code"] == 137
    assert agent.client.state()["containers"] == {}
    with pytest.raises(AgentError, match="no container c1"):
        agent.client.remove_container("c1")


def test_new_client_after_disconnect_gets_output_and_exit(agent):
    volume = agent.shares / "hc_vol_1"
    os.mkfifo(volume / "go")
    os.mkfifo(volume / "done")
    mounts = [{"type": "share", "tag": "hc_vol_1", "destination": "/v", "readonly": False}]
    script = "echo before; read g < /v/go; echo while-away; echo > /v/done; read x; echo got $x"
    agent.client.create_container(
        container_config("c1", ["sh", "-c", script], mounts=mounts, process={"stdin": True})
    )
    agent.client.start_container("c1")
    agent.wait_output("c1", "stdout", b"before\n")
    agent.client.ping()  # answered after our acknowledgement of "before" left
    agent.client.close()

    # With no host connected, the container prints (we know it has when it opens "done").
    with open(volume / "go", "w") as go:
        go.write("go\n")
    with open(volume / "done") as done:
        done.read()

    agent.output.clear()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(agent.socket_path))
    # A new client knows nothing: the handshake tells it which stream is whose.
    agent.client = AgentClient(sock, agent._on_event, agent._on_output)
    agent.client.wait_ready(10)
    agent.client.write_stdin("c1", b"again\n")
    assert agent.wait_exit("c1")["code"] == 0
    # Only what the first client did not acknowledge, nothing lost, nothing repeated.
    assert agent.stdout("c1") == b"while-away\ngot again\n"


def test_destroy_pod_stops_everything_and_ends_the_agent(agent):
    agent.client.create_container(container_config("c1", ["sleep", "1000"]))
    agent.client.start_container("c1")
    agent.client.destroy_pod()
    assert agent.process.wait(30) == 0
    assert agent.client.closed.wait(10)
    assert "pod destroyed" in agent.agent_log()
