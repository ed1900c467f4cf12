import ipaddress
import multiprocessing

import pytest
from hypercontainer.drivers import PortForward
from hypercontainer.errors import NotFound, UserError
from hypercontainer.store import Store
from hypercontainer_plugins.network.bridge.ipam import Leases, Subnet

WORKERS = 6
PODS_EACH = 8


def leases(path, cidr="192.168.123.0/24"):
    return Leases(path, Subnet(cidr))


def allocate(path, pod_id):
    with leases(path).transaction() as txn:
        return txn.allocate(pod_id, f"tap-{pod_id}", "02:00:00:00:00:01")


def test_gateway_is_first_and_never_leased(tmp_path):
    subnet = Subnet("10.9.0.0/24")
    assert str(subnet.gateway) == "10.9.0.1" and subnet.gateway_cidr == "10.9.0.1/24"
    assert str(allocate(tmp_path / "db", "a").address) == "192.168.123.2"


def test_lowest_free_address_and_reuse_after_release(tmp_path):
    db = tmp_path / "state.db"
    a, b, c = (allocate(db, name).address for name in "abc")
    assert [str(x) for x in (a, b, c)] == ["192.168.123.2", "192.168.123.3", "192.168.123.4"]
    assert allocate(db, "b").address == b  # idempotent per pod
    with leases(db).transaction() as txn:
        assert txn.release("b").address == b
        assert txn.release("b") is None
    assert allocate(db, "d").address == b
    assert str(allocate(db, "e").address) == "192.168.123.5"


def test_exhausted_subnet(tmp_path):
    db = tmp_path / "state.db"
    with leases(db, "10.0.0.0/30").transaction() as txn:
        assert str(txn.allocate("a", "t1", "m").address) == "10.0.0.2"
        with pytest.raises(UserError, match="no free address"):
            txn.allocate("b", "t2", "m")


def test_changed_subnet_is_refused_while_leases_exist(tmp_path):
    db = tmp_path / "state.db"
    allocate(db, "a")
    with pytest.raises(UserError, match="outside the configured bridge subnet"):
        with leases(db, "10.9.0.0/24").transaction() as txn:
            txn.allocate("b", "t2", "m")


def test_failed_transaction_leaves_nothing(tmp_path):
    db = tmp_path / "state.db"
    with pytest.raises(RuntimeError):
        with leases(db).transaction() as txn:
            txn.allocate("a", "t", "m")
            raise RuntimeError("host setup failed")
    with leases(db).transaction() as txn:
        assert txn.leases() == []


def test_shares_the_file_with_the_core_store(tmp_path):
    db = tmp_path / "state.db"
    Store(db)
    allocate(db, "a")
    Store(db)  # the core's schema creation is untouched by our tables
    with leases(db).transaction() as txn:
        assert [x.pod_id for x in txn.leases()] == ["a"]


def _worker(path, worker, start, results):
    start.wait()
    for i in range(PODS_EACH):
        try:
            lease = allocate(path, f"pod-{worker}-{i}")
        except Exception as e:  # noqa: BLE001 - reported to the test rather than lost with the process
            results.put(("error", repr(e)))
        else:
            results.put((lease.pod_id, str(lease.address)))


def test_concurrent_processes_never_share_an_address(tmp_path):
    db = tmp_path / "state.db"
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(db, w, start, results)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    start.set()
    got = [results.get(timeout=120) for _ in range(WORKERS * PODS_EACH)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert [e for e in got if e[0] == "error"] == []
    addresses = [address for _, address in got]
    assert len(set(addresses)) == WORKERS * PODS_EACH
    # Lowest-free allocation without releases fills .2 upwards without holes.
    expected = {str(ipaddress.IPv4Address("192.168.123.2") + i) for i in range(len(addresses))}
    assert set(addresses) == expected
    with leases(db).transaction() as txn:
        assert sorted((x.pod_id, str(x.address)) for x in txn.leases()) == sorted(got)


def _claim_port(path, pod_id, start, results):
    allocate(path, pod_id)
    start.wait()
    try:
        with leases(path).transaction() as txn:
            txn.add_forwards(pod_id, [PortForward("tcp", "0.0.0.0", 8080, 80)])
        results.put(pod_id)
    except UserError:
        results.put(None)


def test_concurrent_claims_of_one_host_port(tmp_path):
    db = tmp_path / "state.db"
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claim_port, args=(db, f"p{i}", start, results)) for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    start.set()
    winners = [w for w in (results.get(timeout=120) for _ in procs) if w]
    for p in procs:
        p.join(timeout=60)
    assert len(winners) == 1
    with leases(db).transaction() as txn:
        assert txn.forwards() == [(winners[0], PortForward("tcp", "0.0.0.0", 8080, 80))]


def test_forwards_belong_to_a_lease_and_go_with_it(tmp_path):
    db = tmp_path / "state.db"
    allocate(db, "a")
    allocate(db, "b")
    fwd = PortForward("udp", "127.0.0.1", 5353, 53)
    with leases(db).transaction() as txn:
        with pytest.raises(NotFound, match="no address on the bridge"):
            txn.add_forwards("ghost", [fwd])
        assert txn.add_forwards("a", [fwd]) == [fwd]
        assert txn.add_forwards("a", [fwd]) == []  # again: nothing new
        with pytest.raises(UserError, match="mapped twice"):
            txn.add_forwards("b", [PortForward("udp", "0.0.0.0", 5353, 53)])
        with pytest.raises(NotFound):
            txn.remove_forward("b", fwd)
        txn.release("a")
        assert txn.forwards() == []
