"""What the active profile reproduces: the box each notebook opens with, and the label of each table/figure.

Some claims do not depend on training: parameter counts and kMACs (the paper-size models are built in
every profile), equivalence with the authors' code (their released weights load and give their
numbers: tests/test_official.py), real bitstreams (file bytes, exact decoding), the entropy coder's
speed. Those are *reproductions* in every profile. Rate-distortion curves and every BD-rate need the
papers' training; in the default profile (minutes of CPU on a few bundled photographs) they are *smoke
checks* of the pipeline: right shape, meaningless numbers.
"""

from __future__ import annotations

from lic.config import load_params

#: per notebook: (claims every profile reproduces, claims that need the paper profile)
CLAIMS = {
    "00_overview": (
        ["parameters and kMACs/pixel of every paper-size model (table *Parameters and complexity*)",
         "real bitstreams: every rate is file bytes, every file decodes to the encoder's image, and the files "
         "match the models' own rate estimates (pass/fail table)"],
        ["rate-distortion curves and BD-rates against VTM / BPG on Kodak, CLIC and Tecnick"]),
    "01_cgoo": (
        ["TCM's parameter counts equal the official code's (45.18 / 76.57 M)",
         "online optimisation lowers the RD cost of every image against the plain encoder of the same weights "
         "(pass/fail table)", "every CGOO stream decodes with the fixed decoder"],
        ["Table 3 (−35.21 % vs BPG for CGOO, −33.23 % for TCM) and the ablation BD-rates",
         "the encode-time cost of online optimisation on the paper's hardware"]),
    "02_tinylic": (
        ["v3's parameter count (28.34 M, the released model)",
         "neighborhood attention equal to natten's kernels (records in data/bench/natten)",
         "ScalingNet reaches the rates it is asked for, MSR never makes an image worse (pass/fail tables)"],
        ["Table 3 (−26.4 / −20.5 % vs BPG on Kodak), Table 4 (+0.62 / +0.87 %), Table 5 (−1.73 / −2.19 %)",
         "the Y / YUV 4:2:0 rate-distortion comparison"]),
    "03_hpcm": (
        ["parameters and kMACs/pixel of HPCM-Base and -Large (68.50 M / 918.57, 89.71 M / 1261.29)",
         "Table D's kMACs for 1-4 stages, within 2 % (pass/fail table)",
         "the arithmetic coder's speed (Table C's T_AC, fast path vs CompressAI's, on this machine)",
         "streams that decode across devices"],
        ["BD-rate vs VTM (−15.31 % Base, −19.19 % Large), Table D and E BD-rates, Figure B",
         "Table A's training speed (batch 8 at 256² on a GPU)"]),
}

#: notebooks whose ablation variants start from the main model's base in the default profile (train base_from)
ABLATIONS_FROM_MAIN = {"02_tinylic": "Y, YUV 4:2:0", "03_hpcm": "Large, 1/2/4 stages, non-shared, PhiContext, MS-SSIM"}

LABELS = {
    "reproduction": "**Reproduction** — the paper's claim, checked in this profile.",
    "check": "**Method check (pass/fail)** — a property of the method that holds for any weights.",
    "smoke": "**Smoke check** — the pipeline ran end to end; the models are minutes-trained CPU versions, so the "
             "numbers are not the paper's (`profile: paper` reproduces them).",
    "paper": "**Reproduction** (paper profile) — compare with the paper's numbers.",
}


def _profile(profile: str | None) -> str:
    return load_params(profile=profile)["profile"]


def box_text(notebook: str, profile: str | None = None) -> str:
    """The Markdown of the box a notebook opens with."""
    prof = _profile(profile)
    exact, paper = CLAIMS[notebook]
    lines = [f"> **Profile `{prof}`.** Reproduced exactly in every profile:", ">"]
    lines += [f"> * {c}" for c in exact]
    lines.append(">")
    if prof == "paper":
        lines.append("> This run uses the papers' recipes, so these are reproductions too (datasets and deviations: "
                     "`docs/deviations.md`):")
    else:
        lines.append("> Needs the paper profile (`dvc exp run -S profile=paper`, a GPU; README, *Reproducing at paper "
                     "scale*); here they are **smoke checks** of the pipeline, with models trained for minutes on a CPU:")
    lines += [">", *[f"> * {c}" for c in paper]]
    if prof != "paper" and notebook in ABLATIONS_FROM_MAIN:
        lines.append(">")
        lines.append(f"> The ablation variants ({ABLATIONS_FROM_MAIN[notebook]}) start from the main model's trained "
                     "initialisation: `docs/deviations.md`, *Reading the ablation tables of the default profile*.")
    return "\n".join(lines)


def box(notebook: str, profile: str | None = None):
    """:func:`box_text` as displayable Markdown (the first cell after a notebook's title)."""
    from IPython.display import Markdown

    return Markdown(box_text(notebook, profile))


def label(kind: str, profile: str | None = None):
    """The label above a table or figure: ``reproduction`` (any profile), ``check`` (pass/fail), or
    ``rd`` — a reproduction in the paper profile and a smoke check in the default one."""
    from IPython.display import Markdown

    if kind == "rd":
        kind = "paper" if _profile(profile) == "paper" else "smoke"
    if kind not in LABELS:
        raise ValueError(f"unknown label {kind!r}; one of rd, {', '.join(LABELS)}")
    return Markdown(LABELS[kind])
