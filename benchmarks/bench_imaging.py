"""Imaging benchmarks: 256³ dose convolution with the 51³ 177Lu kernel (tdt JAX FFT vs
``scipy.signal.fftconvolve``, the PyTheranostics approach), and loading a 5-time-point study."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(quick: bool = False) -> list[dict]:
    import numpy as np
    from scipy import signal

    from tdt.dosimetry import KernelConvolver, load_kernel
    from tdt.imaging import load_study, make_phantom_patient

    rows = []
    n = 96 if quick else 256
    repeat = 2 if quick else 3
    kernel = load_kernel().values_gy_per_mbq_h
    image = np.random.default_rng(0).random((n, n, n))
    baseline = _best(lambda: signal.fftconvolve(image, kernel, mode="same"), repeat)
    reference = signal.fftconvolve(image, kernel, mode="same")
    for dtype in ("float64", "float32"):
        convolver = KernelConvolver(kernel, image.shape, dtype=dtype)
        result = convolver(image)  # compile once (excluded, like the kernel FFT)
        error = float(np.max(np.abs(result - reference)) / np.max(reference))
        t = _best(lambda c=convolver: c(image), repeat)
        rows.append({
            "case": f"dose conv {n}^3 * 51^3 kernel ({dtype})", "tdt": t, "baseline": baseline,
            "unit": "s", "target": ">= 2x (CPU)",
            "note": f"baseline scipy.signal.fftconvolve float64; kernel rFFT precomputed; "
                    f"max rel diff {error:.1e}",
        })
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        phantom = make_phantom_patient(Path(tmp) / "p", seed=0)
        generate = time.perf_counter() - start
        loads = []
        for _ in range(repeat):
            start = time.perf_counter()
            study = load_study(phantom.directory, salt="bench")
            loads.append(time.perf_counter() - start)
        rows.append({
            "case": "load_study: 5 NM time points + CT + RTSTRUCT + SEG", "tdt": min(loads),
            "baseline": None, "unit": "s", "target": "< 5 s",
            "note": f"{len(study.time_points)} x {study.geometry.shape} SPECT, CT "
                    f"{study.ct.geometry.shape}, {len(study.masks)} VOIs, median "
                    f"{statistics.median(loads):.2f} s",
        })
        rows.append({
            "case": "make_phantom_patient (seed 0, first call)", "tdt": generate,
            "baseline": None, "unit": "s", "target": "a few s",
            "note": "includes the PBPK model's JAX compilation on a first call in a process",
        })
    return rows
