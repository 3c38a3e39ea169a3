"""Datasets: registry (URLs, checksums), verified downloads, the data stage and manifests."""

from lic.data.download import ChecksumError, DownloadError, OfflineError, download, sha256sum, verify
from lic.data.prepare import load_manifest, manifest_path, prepare
from lic.data.registry import DATASETS, Dataset, RemoteFile, get

__all__ = ["ChecksumError", "DownloadError", "OfflineError", "download", "sha256sum", "verify",
           "load_manifest", "manifest_path", "prepare", "DATASETS", "Dataset", "RemoteFile", "get"]
