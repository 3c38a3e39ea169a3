"""Datasets: ``registry`` (URLs, checksums), ``download`` (verified, resumable), ``prepare`` (the data
stage and manifests). Import the submodules; their names are not shadowed here."""

from lic.data.download import ChecksumError, DownloadError, OfflineError
from lic.data.prepare import load_manifest

__all__ = ["ChecksumError", "DownloadError", "OfflineError", "load_manifest"]
