"""The QEMU command line built from a VMSpec, and the input it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypercontainer.drivers import NetworkAttachment, PortForward, Share, VMSpec
from hypercontainer.errors import UserError
from hypercontainer_plugins.hypervisors.qemu import cmdline


@pytest.fixture
def spec(tmp_path: Path) -> VMSpec:
    return VMSpec(
        pod_id="pod-1",
        vm_name="vm-pod-1",
        vcpus=2,
        memory_mb=256,
        kernel=tmp_path / "vmlinux",
        initrd=tmp_path / "initrd.img",
        kernel_args=["panic=-1", "quiet"],
        run_dir=tmp_path / "run",
        console_log=tmp_path / "console.log",
    )


def option(argv: list[str], flag: str) -> list[str]:
    """Every value given to `flag`."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_boots_the_spec_kernel_with_its_size_and_a_serial_console(spec: VMSpec) -> None:
    argv = cmdline.build(spec, "qemu-system-x86_64", "tcg")
    assert argv[0] == "qemu-system-x86_64"
    assert option(argv, "-kernel") == [str(spec.kernel)]
    assert option(argv, "-initrd") == [str(spec.initrd)]
    assert option(argv, "-append") == ["panic=-1 quiet console=ttyS0"]
    assert option(argv, "-m") == ["256"] and option(argv, "-smp") == ["2"]
    assert option(argv, "-accel") == ["tcg"] and "-cpu" not in argv
    for flag in ("-nodefaults", "-no-reboot", "-daemonize", "-no-user-config"):
        assert flag in argv
    assert f"file,id=console,path={spec.console_log}" in option(argv, "-chardev")
    assert option(argv, "-serial") == ["chardev:console"]
    assert option(argv, "-pidfile") == [str(spec.run_dir / "qemu.pid")]


def test_the_tcg_translation_cache_is_bounded_when_configured(spec: VMSpec) -> None:
    assert option(cmdline.build(spec, "q", "tcg", 64), "-accel") == ["tcg,tb-size=64"]
    assert option(cmdline.build(spec, "q", "kvm", 64), "-accel") == ["kvm"]


def test_kvm_uses_the_host_cpu(spec: VMSpec) -> None:
    argv = cmdline.build(spec, "qemu-system-x86_64", "kvm")
    assert option(argv, "-accel") == ["kvm"] and option(argv, "-cpu") == ["host"]


def test_agent_port_and_monitor_are_sockets_in_the_run_dir(spec: VMSpec) -> None:
    argv = cmdline.build(spec, "qemu", "tcg")
    chardevs = option(argv, "-chardev")
    assert f"socket,id=agent,path={spec.run_dir}/agent.sock,server=on,wait=off" in chardevs
    assert f"socket,id=qmp,path={spec.run_dir}/qmp.sock,server=on,wait=off" in chardevs
    assert "chardev=qmp,mode=control" in option(argv, "-mon")
    assert "virtserialport,id=agent-port,bus=agent-serial.0,chardev=agent,name=hc.agent" in option(
        argv, "-device"
    )


def test_one_9p_export_per_share_readonly_honoured(spec: VMSpec, tmp_path: Path) -> None:
    (tmp_path / "layers").mkdir()
    (tmp_path / "vol").mkdir()
    spec.shares = [
        Share("hc_layers", tmp_path / "layers"),
        Share("hc_vol_0", tmp_path / "vol", readonly=False),
    ]
    argv = cmdline.build(spec, "qemu", "tcg")
    assert option(argv, "-fsdev") == [
        f"local,id=fs0,path={tmp_path}/layers,security_model=passthrough,readonly=on",
        f"local,id=fs1,path={tmp_path}/vol,security_model=passthrough",
    ]
    devices = option(argv, "-device")
    assert "virtio-9p-pci,fsdev=fs0,mount_tag=hc_layers" in devices
    assert "virtio-9p-pci,fsdev=fs1,mount_tag=hc_vol_0" in devices


def test_commas_in_paths_and_names_cannot_add_options(spec: VMSpec, tmp_path: Path) -> None:
    sneaky = tmp_path / "a,readonly=off"
    sneaky.mkdir()
    spec.shares = [Share("hc_layers", sneaky)]
    spec.vm_name = "x,debug-threads=on"
    spec.console_log = tmp_path / "c,append=on"
    argv = cmdline.build(spec, "qemu", "tcg")
    assert option(argv, "-fsdev")[0] == (
        f"local,id=fs0,path={tmp_path}/a,,readonly=off,security_model=passthrough,readonly=on"
    )
    assert option(argv, "-name") == ["x,,debug-threads=on"]
    assert f"file,id=console,path={tmp_path}/c,,append=on" in option(argv, "-chardev")


@pytest.mark.parametrize("tag", ["", "a" * 32, "has space", "x,id=y", "../up"])
def test_bad_share_tags_are_refused(spec: VMSpec, tmp_path: Path, tag: str) -> None:
    spec.shares = [Share(tag, tmp_path)]
    with pytest.raises(UserError, match="share tag"):
        cmdline.build(spec, "qemu", "tcg")


def test_a_share_must_be_an_existing_directory(spec: VMSpec, tmp_path: Path) -> None:
    spec.shares = [Share("hc_layers", tmp_path / "missing")]
    with pytest.raises(UserError, match="is not a directory"):
        cmdline.build(spec, "qemu", "tcg")


def test_user_network_forwards_host_ports(spec: VMSpec) -> None:
    spec.network = NetworkAttachment(
        kind="user",
        mac="52:54:00:aa:bb:cc",
        forwards=[
            PortForward("tcp", "127.0.0.1", 8080, 80),
            PortForward("udp", "0.0.0.0", 5353, 53),
        ],
    )
    argv = cmdline.build(spec, "qemu", "tcg")
    assert option(argv, "-netdev") == [
        "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:5353-:53"
    ]
    assert "virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc" in option(argv, "-device")


def test_tap_network_attaches_the_named_device(spec: VMSpec) -> None:
    spec.network = NetworkAttachment(kind="tap", mac="52:54:00:aa:bb:cc", tap="hc-tap0")
    argv = cmdline.build(spec, "qemu", "tcg")
    assert option(argv, "-netdev") == ["tap,id=net0,ifname=hc-tap0,script=no,downscript=no"]


def test_a_tap_in_another_namespace_is_passed_open(spec: VMSpec) -> None:
    spec.network = NetworkAttachment(
        kind="tap", mac="52:54:00:aa:bb:cc", tap="hc0123", netns="/run/netns/cni-1"
    )
    argv = cmdline.build(spec, "qemu", "tcg", tap_fd=7)
    assert option(argv, "-netdev") == ["tap,id=net0,fd=7"]
    with pytest.raises(UserError, match="needs an open file descriptor"):
        cmdline.build(spec, "qemu", "tcg")


def test_no_network_means_no_nic(spec: VMSpec) -> None:
    spec.network = NetworkAttachment(kind="none")
    argv = cmdline.build(spec, "qemu", "tcg")
    assert "-netdev" not in argv
    assert not any(d.startswith("virtio-net") for d in option(argv, "-device"))


@pytest.mark.parametrize(
    ("network", "message"),
    [
        (NetworkAttachment(kind="user", mac="52:54:00:aa:bb"), "MAC"),
        (NetworkAttachment(kind="user", mac="52:54:00:aa:bb:cc,x=y"), "MAC"),
        (NetworkAttachment(kind="tap", mac="52:54:00:aa:bb:cc", tap="t,script=/x"), "interface"),
        (NetworkAttachment(kind="tap", mac="52:54:00:aa:bb:cc", tap=None), "interface"),
        (NetworkAttachment(kind="bridge", mac="52:54:00:aa:bb:cc"), "kind"),
    ],
)
def test_bad_networks_are_refused(spec: VMSpec, network: NetworkAttachment, message: str) -> None:
    spec.network = network
    with pytest.raises(UserError, match=message):
        cmdline.build(spec, "qemu", "tcg")


@pytest.mark.parametrize(
    "forward",
    [
        PortForward("sctp", "127.0.0.1", 8080, 80),
        PortForward("tcp", "127.0.0.1,hostfwd=tcp::22-:22", 8080, 80),
        PortForward("tcp", "::1", 8080, 80),
        PortForward("tcp", "127.0.0.1", 0, 80),
        PortForward("tcp", "127.0.0.1", 8080, 65536),
    ],
)
def test_bad_forwards_are_refused(forward: PortForward) -> None:
    with pytest.raises(UserError, match="port mapping"):
        cmdline.hostfwd(forward)


def test_forward_rule_text() -> None:
    assert cmdline.hostfwd(PortForward("tcp", "127.0.0.1", 8080, 80)) == "tcp:127.0.0.1:8080-:80"


@pytest.mark.parametrize(("vcpus", "memory"), [(0, 128), (256, 128), (1, 32), (1, "128")])
def test_impossible_sizes_are_refused(spec: VMSpec, vcpus, memory) -> None:
    spec.vcpus, spec.memory_mb = vcpus, memory
    with pytest.raises(UserError):
        cmdline.build(spec, "qemu", "tcg")


def test_share_tags_must_be_unique(spec: VMSpec, tmp_path: Path) -> None:
    spec.shares = [Share("hc_layers", tmp_path), Share("hc_layers", tmp_path)]
    with pytest.raises(UserError, match="unique"):
        cmdline.build(spec, "qemu", "tcg")


def test_a_run_dir_too_long_for_a_socket_is_refused(spec: VMSpec) -> None:
    spec.run_dir = Path("/tmp") / ("d" * 100)
    with pytest.raises(UserError, match="too long for a unix socket"):
        cmdline.build(spec, "qemu", "tcg")


def test_a_template_boots_paused_with_its_ram_on_a_shared_file(
    spec: VMSpec, tmp_path: Path
) -> None:
    spec.network = NetworkAttachment(kind="tap", mac="02:00:00:00:00:01", tap="hctap0")
    argv = cmdline.build(spec, "q", "tcg", boot=cmdline.Boot("template", tmp_path / "ram"))
    assert f"memory-backend-file,id=pc.ram,size=256M,mem-path={tmp_path}/ram,share=on" in option(
        argv, "-object"
    )
    assert option(argv, "-machine") == ["pc,memory-backend=pc.ram"] and "-S" in argv
    # A template holds no host tap: a hub port stands in for it.
    assert option(argv, "-netdev") == ["hubport,id=net0,hubid=0"]


def test_a_clone_maps_the_template_privately_and_waits_for_its_state(
    spec: VMSpec, tmp_path: Path
) -> None:
    spec.network = NetworkAttachment(kind="tap", mac="02:00:00:00:00:01", tap="hctap0")
    cold = cmdline.build(spec, "q", "tcg")
    clone = cmdline.build(spec, "q", "tcg", boot=cmdline.Boot("clone", tmp_path / "ram"))
    assert "share=off" in option(clone, "-object")[0]
    assert option(clone, "-incoming") == ["defer"] and "-S" not in clone
    assert option(clone, "-netdev") == option(cold, "-netdev")  # its own tap
    # The same devices in the same order as a cold boot of the shape (and so its template).
    assert option(clone, "-device") == option(cold, "-device")
    assert "vmgenid,guid=auto" in option(cold, "-device")


def test_boot_modes_are_checked() -> None:
    with pytest.raises(ValueError):
        cmdline.Boot("clone")
    with pytest.raises(ValueError):
        cmdline.Boot("warm", Path("/x"))
