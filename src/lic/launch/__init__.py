"""``lic launch``: DVC stages as independent jobs, on this machine or on a SLURM cluster.

DVC runs one workspace's stages one after another; the paper profile's ~134 training stages would take
a year that way. ``lic launch`` reads the pipeline's own graph (:mod:`lic.launch.graph`), submits each
stage whose upstream is done as a job through submitit (:mod:`lic.launch.executors`), and each job runs
the stage's ``cmd`` and then records the stage in its ``dvc.lock`` (:mod:`lic.launch.job`), so that
``dvc status`` reports it up to date and ``dvc repro`` goes on downstream. Progress and failures are
files under ``logs/launch/`` (:mod:`lic.launch.state`); ``lic launch --plan`` prices stages in GPU-hours
(:mod:`lic.launch.plan`). docs/launch.md.
"""
