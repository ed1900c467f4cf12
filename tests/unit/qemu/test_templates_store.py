"""The template store: one template per shape, made once however many ask at once."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest
from hypercontainer.drivers import NetworkAttachment, Share, VMSpec
from hypercontainer.errors import DriverError
from hypercontainer_plugins.hypervisors.qemu import templates as templates_module
from hypercontainer_plugins.hypervisors.qemu.shape import Shape
from hypercontainer_plugins.hypervisors.qemu.templates import MEMORY, STATE, TemplateStore


@pytest.fixture(autouse=True)
def no_tmpfs_mount(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never mount anything, even as root."""
    monkeypatch.setattr(templates_module, "_filesystem_type", lambda path: "tmpfs")


def spec(tmp_path: Path, **changes) -> VMSpec:
    kernel, initrd = tmp_path / "vmlinux", tmp_path / "initrd.img"
    for path in (kernel, initrd):
        if not path.exists():
            path.write_bytes(b"x")
    fields = dict(pod_id="p", vm_name="vm", vcpus=1, memory_mb=128, kernel=kernel,
                  initrd=initrd, kernel_args=["quiet"], run_dir=tmp_path / "run",
                  console_log=tmp_path / "console.log",
                  shares=[Share("hc_layers", tmp_path)],
                  network=NetworkAttachment(kind="user", mac="02:00:00:00:00:09"))
    fields.update(changes)
    return VMSpec(**fields)


def shape_of(vm: VMSpec) -> Shape:
    return Shape.of(vm, "/bin/true", "QEMU emulator version 7.2", "tcg", 64)


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
    other_pod = spec(tmp_path, pod_id="q", run_dir=tmp_path / "elsewhere",
                     shares=[Share("hc_layers", tmp_path / "other", readonly=False)],
                     network=NetworkAttachment(kind="user", mac="02:00:00:00:00:0a"))
    assert shape_of(other_pod).key == base.key
    for changed in (dict(memory_mb=256), dict(vcpus=2), dict(kernel_args=["debug"]),
                    dict(shares=[Share("hc_layers", tmp_path), Share("hc_vol_0", tmp_path)]),
                    dict(network=NetworkAttachment(kind="tap", mac="02:00:00:00:00:09"))):
        assert shape_of(spec(tmp_path, **changed)).key != base.key, changed


def test_a_new_guest_image_or_qemu_is_a_new_shape(tmp_path: Path) -> None:
    vm = spec(tmp_path)
    before = shape_of(vm)
    assert before.inputs_current()
    os.utime(vm.initrd, ns=(1, 1))  # the initrd rebuilt
    assert not before.inputs_current()
    assert shape_of(vm).key != before.key
    assert Shape.of(vm, "/bin/true", "QEMU emulator version 8.2", "tcg", 64).key != \
        shape_of(vm).key


def test_a_shape_survives_its_round_trip_through_json(tmp_path: Path) -> None:
    shape = shape_of(spec(tmp_path))
    assert Shape.from_dict(shape.to_dict()) == shape


def test_made_once_then_found(tmp_path: Path) -> None:
    store, log = TemplateStore(tmp_path / "templates"), tmp_path / "makes"
    shape = shape_of(spec(tmp_path))
    first = store.get(shape, fake_make(log))
    again = store.get(shape, fake_make(log))
    assert first == again and log.read_text().count("\n") == 1
    assert first.memory.read_bytes() == b"ram" and first.memory.stat().st_mode & 0o777 == 0o400
    store.hit(first)
    store.hit(first)
    assert first.hits() == 2
    assert [t.key for t in store.list()] == [shape.key]


def _get_in_another_process(root: str, log: str, tmp: str) -> None:
    TemplateStore(Path(root)).get(shape_of(spec(Path(tmp))), fake_make(Path(log), 0.5))


def test_concurrent_first_uses_make_it_once(tmp_path: Path) -> None:
    root, log = tmp_path / "templates", tmp_path / "makes"
    shape_of(spec(tmp_path))  # kernel and initrd exist before the others look
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_get_in_another_process,
                               args=(str(root), str(log), str(tmp_path))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert log.read_text().count("\n") == 1
    assert len(TemplateStore(root).list()) == 1


def test_a_failed_make_leaves_nothing(tmp_path: Path) -> None:
    store = TemplateStore(tmp_path / "templates")

    def broken(work: Path) -> None:
        (work / MEMORY).write_bytes(b"half")
        raise DriverError("the template guest never started its agent")

    with pytest.raises(DriverError, match="never started"):
        store.get(shape_of(spec(tmp_path)), broken)
    assert [p.name for p in store.root.iterdir()] == []
    with pytest.raises(DriverError, match="no state file"):
        store.get(shape_of(spec(tmp_path)), lambda work: (work / MEMORY).write_bytes(b"r"))


def test_discarded_and_stale_templates_go(tmp_path: Path) -> None:
    store, log = TemplateStore(tmp_path / "templates"), tmp_path / "makes"
    vm = spec(tmp_path)
    old = store.get(shape_of(vm), fake_make(log))
    store.discard(old.key)
    assert store.find(shape_of(vm)) is None
    old = store.get(shape_of(vm), fake_make(log))
    os.utime(vm.kernel, ns=(2, 2))  # a new kernel: the old template is stale
    new = store.get(shape_of(vm), fake_make(log))
    assert new.key != old.key and [t.key for t in store.list()] == [new.key]


def test_at_most_keep_templates_least_recently_used_go_first(tmp_path: Path) -> None:
    store, log = TemplateStore(tmp_path / "templates"), tmp_path / "makes"
    made = [store.get(shape_of(spec(tmp_path, memory_mb=128 + i)), fake_make(log))
            for i in range(templates_module.KEEP)]
    store.hit(made[0])  # the oldest is the most recently used now
    os.utime(made[0].directory / "hits", (time.time() + 10, time.time() + 10))
    store.get(shape_of(spec(tmp_path, memory_mb=1024)), fake_make(log))
    keys = {t.key for t in store.list()}
    assert len(keys) == templates_module.KEEP
    assert made[0].key in keys and made[1].key not in keys
