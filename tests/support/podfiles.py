"""The original hyperd's example pod files, and which of them this project accepts."""

from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "data" / "hyperd-examples"

ACCEPTED = [
    "file-mapping.pod",
    "multi-container.pod",
    "nfs-volume.pod",
    "port-mapping.pod",
    "tomcat.pod",
    "ubuntu-attach-files.pod",
    "ubuntu-with-user.pod",
    "ubuntu.pod",
    "with-volume.pod",
    "ubuntu.yml",
]

# What running them gives (tests/e2e/test_example_pods.py): 12 of the 14 run as meant.
RUNS_AS_MEANT = [
    "file-mapping.pod",
    "insert-file.pod",
    "kubernetes_tomcat.pod",  # with run -k
    "kubernetes_ubuntu_restart.pod",  # with run -k
    "multi-container.pod",
    "port-mapping.pod",
    "tomcat.pod",
    "ubuntu-attach-files.pod",
    "ubuntu-with-user.pod",
    "ubuntu.pod",
    "ubuntu.yml",
    "with-volume.pod",
]
NOT_RUNNABLE = {
    "nfs-volume.pod": "volume sharevolume: format nas is not supported"
    " (host directories and files, and empty volumes are)",
    "port-mapping-in-sandbox.pod": "portmappingWhiteLists: port mapping white lists are not"
    " supported",
}
