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
