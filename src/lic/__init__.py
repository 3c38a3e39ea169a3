"""lic-repro: reference replication of HPCM, TinyLIC and CGOO/TCM learned image compression."""

__version__ = "0.1.0"
