"""The template store: one template per shape, made once however many ask at once."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from hypercontainer.drivers import NetworkAttachment, Share, VMSpec
from hypercontainer.errors import DriverError
from hypercontainer_plugins.hypervisors import templates as templates_module
from hypercontainer_plugins.hypervisors.shape import Shape
from hypercontainer_plugins.hypervisors.templates import (
    RETRY_AFTER,
    RETRY_AFTER_MAX,
    TemplateStore,
    retry_after,
)

MEMORY, STATE = "memory", "state"  # what the (QEMU-like) makers here leave
FILES = (MEMORY, STATE)


@pytest.fixture(autouse=True)
def no_tmpfs_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never mount anything, even as root."""
    monkeypatch.setattr(templates_module, "_filesystem_type", lambda path: "tmpfs")


def spec(tmp_path: Path, **changes) -> VMSpec:
    kernel, initrd = tmp_path / "vmlinux", tmp_path / "initrd.img"
    for path in (kernel, initrd):
        if not path.exists():
            path.write_bytes(b"x")
    fields = dict(
        pod_id="p",
        vm_name="vm",
        vcpus=1,
        memory_mb=128,
        kernel=kernel,
        initrd=initrd,
        kernel_args=["quiet"],
        run_dir=tmp_path / "run",
        console_log=tmp_path / "console.log",
        shares=[Share("hc_layers", tmp_path)],
        network=NetworkAttachment(kind="user", mac="02:00:00:00:00:09"),
    )
    fields.update(changes)
    return VMSpec(**fields)


def shape_of(vm: VMSpec, vmm: str = "qemu") -> Shape:
    return Shape.of(vm, vmm, "/bin/true", "QEMU emulator version 7.2", "tcg", {"tcg_cache_mb": 64})


def fake_make(log: Path, seconds: float = 0.0):
    def make(work: Path) -> None:
        with open(log, "a") as file:
            file.write(f"{os.getpid()}\n")
        time.sleep(seconds)  # a slow maker, so that others really wait for it
        (work / MEMORY).write_bytes(b"ram")
        (work / STATE).write_bytes(b"devices")

    return make


def test_back_ends_are_not_part_of_the_shape_but_devices_are(tmp_path: Path) -> None:
    base = shape_of(spec(tmp_path))
    other_pod = spec(
        tmp_path,
        pod_id="q",
        run_dir=tmp_path / "elsewhere",
        shares=[Share("hc_layers", tmp_path / "other", readonly=False)],
        network=NetworkAttachment(kind="user", mac="02:00:00:00:00:0a"),
    )
    assert shape_of(other_pod).key == base.key
    for changed in (
        dict(memory_mb=256),
        dict(vcpus=2),
        dict(kernel_args=["debug"]),
        dict(shares=[Share("hc_layers", tmp_path), Share("hc_vol_0", tmp_path)]),
        dict(network=NetworkAttachment(kind="tap", mac="02:00:00:00:00:09")),
    ):
        assert shape_of(spec(tmp_path, **changed)).key != base.key, changed


def test_a_new_guest_image_or_qemu_is_a_new_shape(tmp_path: Path) -> None:
    vm = spec(tmp_path)
    before = shape_of(vm)
    assert before.inputs_current()
    os.utime(vm.initrd, ns=(1, 1))  # the initrd rebuilt
    assert not before.inputs_current()
    assert shape_of(vm).key != before.key
    assert (
        Shape.of(
            vm, "qemu", "/bin/true", "QEMU emulator version 8.2", "tcg", {"tcg_cache_mb": 64}
        ).key
        != shape_of(vm).key
    )
    assert (
        Shape.of(
            vm, "qemu", "/bin/true", "QEMU emulator version 7.2", "tcg", {"tcg_cache_mb": 128}
        ).key
        != shape_of(vm).key
    )
    helper = tmp_path / "virtiofsd"
    helper.write_bytes(b"v1")
    with_helper = Shape.of(vm, "qemu", "/bin/true", "v", "kvm", helpers=(str(helper),))
    assert with_helper.inputs_current()
    helper.write_bytes(b"v2, longer")  # a helper program upgraded
    assert not with_helper.inputs_current()


def test_a_shape_survives_its_round_trip_through_json(tmp_path: Path) -> None:
    shape = shape_of(spec(tmp_path))
    assert Shape.from_dict(shape.to_dict()) == shape


def test_made_once_then_found(tmp_path: Path) -> None:
    store, log = TemplateStore(tmp_path / "templates", "qemu"), tmp_path / "makes"
    shape = shape_of(spec(tmp_path))
    first = store.get(shape, fake_make(log), FILES)
    again = store.get(shape, fake_make(log), FILES)
    assert first == again and log.read_text().count("\n") == 1
    memory = first.path(MEMORY)
    assert memory.read_bytes() == b"ram" and memory.stat().st_mode & 0o777 == 0o400
    assert first.files == FILES
    store.hit(first)
    store.hit(first)
    assert first.hits() == 2
    assert [t.key for t in store.list()] == [shape.key]


def _get_in_another_process(root: str, log: str, tmp: str) -> None:
    TemplateStore(Path(root), "qemu").get(
        shape_of(spec(Path(tmp))), fake_make(Path(log), 0.5), FILES
    )


def test_concurrent_first_uses_make_it_once(tmp_path: Path) -> None:
    root, log = tmp_path / "templates", tmp_path / "makes"
    shape_of(spec(tmp_path))  # kernel and initrd exist before the others look
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_get_in_another_process, args=(str(root), str(log), str(tmp_path)))
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert log.read_text().count("\n") == 1
    assert len(TemplateStore(root, "qemu").list()) == 1


def test_a_failed_make_leaves_nothing(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "templates", "qemu")

    def broken(work: Path) -> None:
        (work / MEMORY).write_bytes(b"half")
        raise DriverError("the template guest never started its agent")

    with pytest.raises(DriverError, match="never started"):
        store.get(shape_of(spec(tmp_path)), broken, FILES)
    assert [p.name for p in store.root.iterdir()] == []
    with pytest.raises(DriverError, match="no state file"):
        store.get(shape_of(spec(tmp_path)), lambda work: (work / MEMORY).write_bytes(b"r"), FILES)


def test_discarded_and_stale_templates_go(tmp_path: Path) -> None:
    store, log = TemplateStore(tmp_path / "templates", "qemu"), tmp_path / "makes"
    vm = spec(tmp_path)
    old = store.get(shape_of(vm), fake_make(log), FILES)
    store.discard(old.key)
    assert store.find(shape_of(vm)) is None
    old = store.get(shape_of(vm), fake_make(log), FILES)
    os.utime(vm.kernel, ns=(2, 2))  # a new kernel: the old template is stale
    new = store.get(shape_of(vm), fake_make(log), FILES)
    assert new.key != old.key and [t.key for t in store.list()] == [new.key]


def test_at_most_keep_templates_least_recently_used_go_first(tmp_path: Path) -> None:
    store, log = TemplateStore(tmp_path / "templates", "qemu"), tmp_path / "makes"
    made = [
        store.get(shape_of(spec(tmp_path, memory_mb=128 + i)), fake_make(log), FILES)
        for i in range(templates_module.KEEP)
    ]
    store.hit(made[0])  # the oldest is the most recently used now
    os.utime(made[0].directory / "hits", (time.time() + 10, time.time() + 10))
    store.get(shape_of(spec(tmp_path, memory_mb=1024)), fake_make(log), FILES)
    keys = {t.key for t in store.list()}
    assert len(keys) == templates_module.KEEP
    assert made[0].key in keys and made[1].key not in keys


def test_each_driver_sees_its_own_templates_in_the_shared_directory(tmp_path: Path) -> None:
    root, log = tmp_path / "templates", tmp_path / "makes"
    qemu, ch = TemplateStore(root, "qemu"), TemplateStore(root, "cloud-hypervisor")
    vm = spec(tmp_path)
    mine = qemu.get(shape_of(vm), fake_make(log), FILES)
    theirs = ch.get(shape_of(vm, "cloud-hypervisor"), fake_make(log), FILES)
    assert mine.key != theirs.key
    assert [t.key for t in qemu.list()] == [mine.key]
    assert [t.key for t in ch.list()] == [theirs.key]
    assert theirs.describe()["cloud-hypervisor"] == "QEMU emulator version 7.2"
    assert "cloud-hypervisor" not in mine.describe() and "qemu" in mine.describe()


def test_a_directory_that_is_no_template_is_removed_when_one_is_made(tmp_path: Path) -> None:
    store, log = TemplateStore(tmp_path / "templates", "qemu"), tmp_path / "makes"
    old_format = store.root / "0123456789abcdef"
    old_format.mkdir(parents=True)
    (old_format / "meta.json").write_text('{"shape": {"qemu_version": "7.2"}, "created": 1}')
    store.get(shape_of(spec(tmp_path)), fake_make(log), FILES)
    assert not old_format.exists() and len(store.list()) == 1


def test_a_shape_whose_template_failed_boots_cold_for_a_back_off(tmp_path: Path) -> None:
    now = [1000.0]
    store, attempts = TemplateStore(tmp_path / "templates", "qemu", clock=lambda: now[0]), []
    healthy = [False]

    def flaky(work: Path) -> None:
        attempts.append(work)
        if not healthy[0]:
            raise DriverError("no agent")
        fake_make(tmp_path / "makes")(work)

    shape = shape_of(spec(tmp_path))
    assert store.usable(shape, flaky, FILES) is None
    now[0] += RETRY_AFTER - 1
    assert store.usable(shape, flaky, FILES) is None  # within the back-off: not tried
    assert len(attempts) == 1
    now[0] += 1
    assert store.usable(shape, flaky, FILES) is None  # tried again, failed again
    assert len(attempts) == 2
    now[0] += RETRY_AFTER  # the back-off doubled: not yet
    assert store.usable(shape, flaky, FILES) is None and len(attempts) == 2
    now[0] += RETRY_AFTER
    healthy[0] = True
    assert store.usable(shape, flaky, FILES) is not None and len(attempts) == 3
    store.discard(shape.key)
    assert store.usable(shape, flaky, FILES) is not None  # made: the back-off is over
    assert retry_after(100) == RETRY_AFTER_MAX
    other = shape_of(spec(tmp_path, memory_mb=512))
    assert store.usable(other, fake_make(tmp_path / "makes"), FILES) is not None
    store.give_up(other.key, "its first clone failed")
    assert store.usable(other, fake_make(tmp_path / "makes"), FILES) is None


def test_run_directories_of_dead_makers_are_found(tmp_path: Path) -> None:
    mine = templates_module.maker_run_dir(tmp_path, "qemu", "0123456789abcdef")
    assert mine.name == f"0123456789ab-{os.getpid()}"
    dead = tmp_path / "templates" / "qemu" / "0123456789ab-999999999"
    another_drivers = tmp_path / "templates" / "cloud-hypervisor" / "0123456789ab-999999999"
    for directory in (mine, dead, another_drivers):
        directory.mkdir(parents=True)
    assert templates_module.abandoned_run_dirs(tmp_path, "qemu") == [dead]


def test_leftovers_of_dead_makers_go_and_a_live_maker_s_work_stays(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "templates", "qemu")
    template = store.get(shape_of(spec(tmp_path)), fake_make(tmp_path / "makes"), FILES)
    dead = store.root / "0123456789abcdef.making-999999999"
    live = store.root / f"fedcba9876543210.making-{os.getpid()}"
    for directory in (dead, live):
        directory.mkdir()
        (directory / MEMORY).write_bytes(b"ram")
    store.remove_leftovers()
    assert sorted(p.name for p in store.root.iterdir()) == sorted([template.key, live.name])
    store.remove_leftovers()  # and again, with nothing to do
    TemplateStore(tmp_path / "none", "qemu").remove_leftovers()  # no directory yet
