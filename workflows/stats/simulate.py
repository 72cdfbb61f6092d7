"""Long-memory noise for the known-answer tests and size benchmarks of the forecast comparison tests."""

import numpy as np


def fractional_noise(reps: int, n: int, d: float, rng: np.random.Generator) -> np.ndarray:
    """(reps, n) unit-variance Gaussian ARFIMA(0, d, 0), exactly, by circulant embedding (Davies & Harte 1987;
    the real and imaginary parts of one FFT are two independent series). Autocorrelations
    rho(k) = rho(k - 1) (k - 1 + d) / (k - d); 0 <= d < 0.5 (the embedding is non-negative there)."""
    k = np.arange(1, n + 1)
    rho = np.concatenate([[1.0], np.cumprod((k - 1 + d) / (k - d))])  # lags 0 .. n
    eig = np.fft.rfft(np.concatenate([rho, rho[-2:0:-1]])).real  # circulant of size 2n
    m = 2 * n
    root = np.sqrt(np.maximum(np.concatenate([eig, eig[-2:0:-1]]), 0.0) / m)
    half = (reps + 1) // 2
    w = rng.standard_normal((half, m)) + 1j * rng.standard_normal((half, m))
    z = np.fft.fft(root * w, axis=1)[:, :n]
    return np.concatenate([z.real, z.imag])[:reps]


def monthly_differentials(
    reps: int,
    months: int,
    d: float,
    rng: np.random.Generator,
    horizon: int = 1,
    shift: float = 0.2,
    month: int = 720,
) -> np.ndarray:
    """(reps, months * month) loss differentials with equal expected loss: in each month its own
    fractional noise with memory d (drawn afresh each month: the memory does not carry across), at
    `horizon` > 1 the mean of that many consecutive hours, plus a level of its own per month,
    N(0, shift^2) in sds of the hourly noise (monthly refits move the mean)."""
    x = fractional_noise(reps * months, month + horizon - 1, d, rng)
    if horizon > 1:
        c = np.cumsum(np.pad(x, ((0, 0), (1, 0))), axis=1)
        x = (c[:, horizon:] - c[:, :-horizon]) / horizon
    x = x + shift * rng.standard_normal((reps * months, 1))
    return x.reshape(reps, months * month)
