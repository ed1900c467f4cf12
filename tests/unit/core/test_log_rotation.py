"""Container logs rotate like Docker's max-size/max-file: bounded files, nothing torn,
readers and followers see the entries in order across files."""

from __future__ import annotations

import threading
import time

from hypercontainer.logs import ContainerLog, encode_line

ENTRY = len(encode_line("stdout", b"line 000\n").encode())  # every test line is this long


def write(log: ContainerLog, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        log.append("stdout", f"line {n:03}\n".encode())


def numbers(entries) -> list[int]:
    return [int(data.split()[1]) for _, _, data in entries]


def test_a_full_file_becomes_the_first_rotated_one_and_the_oldest_goes(tmp_path):
    log = ContainerLog(tmp_path / "c.log", max_bytes=3 * ENTRY, max_files=3)
    write(log, 10)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c.log", "c.log.1", "c.log.2"]
    assert all(p.stat().st_size <= 3 * ENTRY for p in tmp_path.iterdir())
    # 10 entries, 3 per file, 3 files: the newest 7 are kept, oldest first
    assert numbers(log.read()) == list(range(3, 10))
    assert numbers(log.read(tail=2)) == [8, 9]


def test_one_file_only_starts_again_when_full(tmp_path):
    log = ContainerLog(tmp_path / "c.log", max_bytes=2 * ENTRY, max_files=1)
    write(log, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["c.log"]
    assert numbers(log.read()) == [4]


def test_an_entry_larger_than_a_file_is_kept_whole_in_a_file_of_its_own(tmp_path):
    log = ContainerLog(tmp_path / "c.log", max_bytes=ENTRY, max_files=2)
    write(log, 1)
    log.append("stdout", b"y" * (4 * ENTRY))
    assert [data for _, _, data in log.read()] == [b"line 000\n", b"y" * (4 * ENTRY)]


def test_a_log_written_before_a_restart_rotates_by_its_size_on_disk(tmp_path):
    write(ContainerLog(tmp_path / "c.log", max_bytes=3 * ENTRY, max_files=2), 2)
    again = ContainerLog(tmp_path / "c.log", max_bytes=3 * ENTRY, max_files=2)
    write(again, 2, start=2)
    assert (tmp_path / "c.log.1").stat().st_size == 3 * ENTRY
    assert numbers(again.read()) == [0, 1, 2, 3]


def test_a_follower_sees_every_entry_once_across_rotations(tmp_path):
    log = ContainerLog(tmp_path / "c.log", max_bytes=4 * ENTRY, max_files=50)
    write(log, 3)
    seen: list[int] = []
    following = log.read(follow=True)

    def follow() -> None:
        for entry in following:
            seen.extend(numbers([entry]))

    reader = threading.Thread(target=follow)
    reader.start()
    for start in range(3, 100, 3):  # the follower is inside a file each time it rotates
        write(log, 3, start)
        deadline = time.monotonic() + 10
        while len(seen) < start + 3 and time.monotonic() < deadline:
            time.sleep(0.001)
    log.end()
    reader.join(10)
    assert not reader.is_alive()
    assert seen == list(range(102))
    assert log.rotations > 20


def test_removing_a_log_removes_its_rotated_files(tmp_path):
    log = ContainerLog(tmp_path / "c.log", max_bytes=ENTRY, max_files=3)
    write(log, 5)
    log.remove()
    assert list(tmp_path.iterdir()) == []


def test_tail_counts_lines_not_the_chunks_they_came_in(tmp_path):
    log = ContainerLog(tmp_path / "c.log")
    log.append("stdout", b"one\ntwo\nthr")
    log.append("stderr", b"ee\nfour\n")
    log.append("stdout", b"five")  # no newline yet: a line all the same
    assert [d for _, _, d in log.read(tail=1)] == [b"five"]
    assert [d for _, _, d in log.read(tail=2)] == [b"four\n", b"five"]
    assert [(s, d) for _, s, d in log.read(tail=3)] == [
        ("stdout", b"thr"),
        ("stderr", b"ee\nfour\n"),
        ("stdout", b"five"),
    ]
    assert b"".join(d for _, _, d in log.read(tail=100)) == b"one\ntwo\nthree\nfour\nfive"
    assert list(log.read(tail=0)) == []
